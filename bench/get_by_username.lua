dofile("bench/common.lua")
request = function()
  return wrk.format("GET", "/api/v1/users/by-username/" .. seeded_username(math.random(0, users - 1)),
                    headers())
end
