dofile("bench/common.lua")
request = function()
  return wrk.format("GET", "/api/v1/events?limit=100", headers())
end
