-- POST with a caller-made bcrypt hash (no argon2 on the server); unique names per thread.
dofile("bench/common.lua")
local hash = "$2b$04$OlPpVgLFaZFJB31QAVtesuUU1FzjOPosEmvpmG876eE7dOlILxKMW"
local counter = 0
local prefix
init = function(args)
  prefix = random_tag("b")
end
request = function()
  counter = counter + 1
  local name = prefix .. "_" .. counter
  local body = '{"email": "' .. name .. '@bench.example", "username": "' .. name ..
               '", "hashed_password": "' .. hash .. '"}'
  return wrk.format("POST", "/api/v1/users", headers({["Content-Type"] = "application/json"}), body)
end
