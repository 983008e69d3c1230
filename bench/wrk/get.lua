-- wrk script: GET with the device token in TOKEN (docs/benchmarks.md, "By hand with wrk")
local token = os.getenv("TOKEN")
if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end
