-- wrk script: every request is a distinct, freshly signed Slack slash command, so the bridge's
-- signature check, replay cache and audit trail see real traffic. HMAC-SHA256 comes from the
-- libcrypto wrk is linked against (LuaJIT FFI), so the generator stays cheap.
--
-- Alternates `/slipway whoami` (a meta reply) and a denied `/kubectl get pods -n prod`: both
-- write and fsync an audit record before the ack. Reports p50/p90/p99/max and the non-2xx count.

local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
]]
local C = ffi.C
local secret = os.getenv("SLACK_SIGNING_SECRET") or "bench-signing-secret-0123"
local md = ffi.new("unsigned char[32]")
local md_len = ffi.new("unsigned int[1]")
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

local threads = {}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local n = 0
-- Each wrk run gets its own trigger ids: a trigger seen in an earlier run would be a Slack retry
-- (acked and dropped) and measure nothing.
local run = os.getenv("SLIPWAY_BENCH_RUN") or tostring(os.time())
local bodies = {
  "command=%2Fslipway&text=whoami&user_id=U0VIEWER&user_name=vera&team_id=T1&channel_id=C1&response_url=",
  "command=%2Fkubectl&text=get+pods+-n+prod&user_id=U0VIEWER&user_name=vera&team_id=T1&channel_id=C1&response_url=",
}

function request()
  n = n + 1
  local ts = tostring(os.time())
  local body = bodies[n % 2 + 1] .. "&trigger_id=w" .. run .. "." .. tid .. "." .. n
  local base = "v0:" .. ts .. ":" .. body
  C.HMAC(C.EVP_sha256(), secret, #secret, base, #base, md, md_len)
  local sig = {}
  for i = 0, 31 do sig[i + 1] = hex[md[i]] end
  return wrk.format("POST", "/slack/commands", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Slack-Request-Timestamp"] = ts,
    ["X-Slack-Signature"] = "v0=" .. table.concat(sig),
  }, body)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    "requests %d in %.1f s: %.0f req/s; p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; non-2xx %d, errors %d\n",
    summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
