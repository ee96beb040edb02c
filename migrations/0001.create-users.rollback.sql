-- Undoes 0001.create-users: drops the table with its indexes and every user in it.
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-table
DROP TABLE users;
