-- Undoes 0003.create-api-clients.
DROP TABLE api_clients;
