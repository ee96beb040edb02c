-- Undoes 0006.create-idempotency-keys.
DROP TABLE idempotency_keys;
