dofile("bench/common.lua")
request = function()
  return wrk.format("GET", "/api/v1/users/" .. math.random(1, users), headers())
end
