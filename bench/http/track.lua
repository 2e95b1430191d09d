-- wrk script: POST a ~420-byte Segment track call ("Order Completed") to
-- the web channel's /v1/track, with the write key as the Basic user name.
-- Every request has its own messageId (a repeat would be a duplicate) and
-- one of 100,000 user ids, so that customers are resolved, created at
-- first and found afterwards.
local counter = 0
local tid = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- "bench-key-0123456789:" in base64 (a server key: a shop backend's
-- Segment client sends Order Completed)
wrk.headers["Authorization"] = "Basic YmVuY2gta2V5LTAxMjM0NTY3ODk6"

function request()
  counter = counter + 1
  local body = string.format(
    '{"type":"track","event":"Order Completed",' ..
    '"messageId":"bench-%d-%09d","userId":"user-%05d",' ..
    '"anonymousId":"a1b2c3d4-e5f6-4711-9a77-0b3c1d2e4f50",' ..
    '"timestamp":"2026-11-23T10:15:30.123Z","context":{"ip":"203.0.113.7",' ..
    '"locale":"de-DE","page":{"path":"/checkout/complete"}},' ..
    '"properties":{"order_id":"o-981234","total":49.90,"currency":"EUR",' ..
    '"products":[{"sku":"A-100-XL","quantity":2,"price":20.00},' ..
    '{"sku":"B-200-SM","quantity":1,"price":9.90}]}}',
    tid, counter, counter % 100000)
  return wrk.format(nil, "/v1/track", nil, body)
end
