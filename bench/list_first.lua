dofile("bench/common.lua")
request = function()
  return wrk.format("GET", "/api/v1/users?limit=50", headers())
end
