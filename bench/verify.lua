-- verify-credentials of random seeded users (their password is "seeded password").
dofile("bench/common.lua")
request = function()
  local body = '{"login": "' .. seeded_username(math.random(0, users - 1)) ..
               '", "password": "seeded password"}'
  return wrk.format("POST", "/api/v1/users/verify-credentials",
                    headers({["Content-Type"] = "application/json"}), body)
end
