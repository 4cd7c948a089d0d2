-- telemetry.lua — wrk script for bench/http-telemetry: every request is ThingsBoard's HTTP
-- device API telemetry post, POST /api/v1/$TOKEN/telemetry {"temperature":N}, over the
-- connection's keep-alive session. Requests go to the devices in turn (tokens PREFIX0 ..
-- PREFIX(N-1), from HTTP_BENCH_PREFIX and HTTP_BENCH_DEVICES), each wrk thread starting
-- elsewhere in the list, so the store sees many devices as it would from a fleet.
local devices = tonumber(os.getenv("HTTP_BENCH_DEVICES") or "100")
local prefix = os.getenv("HTTP_BENCH_PREFIX") or "httpbench-"
local headers = { ["Content-Type"] = "application/json" }
local next_thread = 0
local n = 0

function setup(thread)
   thread:set("first", next_thread * 7919)
   next_thread = next_thread + 1
end

function init(args)
   n = first or 0
end

function request()
   n = n + 1
   local path = "/api/v1/" .. prefix .. (n % devices) .. "/telemetry"
   return wrk.format("POST", path, headers, '{"temperature":' .. (n % 1000) .. '}')
end
