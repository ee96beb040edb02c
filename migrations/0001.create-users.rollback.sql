-- Undoes 0001.create-users: drops the table with its indexes and every user in it.
DROP TABLE users;
