-- PATCH a random seeded user's email (last writer wins: no If-Match). The email stays in the
-- seed's domains and the username stays, so later scenarios and runs still find the user.
dofile("bench/common.lua")
local counter = 0
local prefix
init = function(args)
  prefix = random_tag("p")
end
request = function()
  counter = counter + 1
  local body = '{"email": "' .. prefix .. "." .. counter .. '@example.net"}'
  return wrk.format("PATCH", "/api/v1/users/" .. math.random(1, users),
                    headers({["Content-Type"] = "application/merge-patch+json"}), body)
end
