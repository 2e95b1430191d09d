-- wrk script, two workloads of bench/http/run (WORKLOAD in the
-- environment):
--
-- web: a ~420-byte Segment track call ("Order Completed") to the web
-- channel's /v1/track, with a server key as the Basic user name. Every
-- request has its own messageId (a repeat would be a duplicate) and one of
-- 100,000 user ids, so that customers are resolved, created at first and
-- found afterwards.
--
-- shop: the path a shop really takes (issue 17). Its backend POSTs an
-- order.placed to the events API with its server key: every request its
-- own event id and order id, one of 100,000 anonymous visitors (customers
-- created at first, then found), two order lines with qty (so the stock
-- ledger records two reservations), ~420 bytes.
local counter = 0
local tid = 0
local threads = 0
local shop = os.getenv("WORKLOAD") == "shop"

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if shop then
  wrk.headers["Authorization"] = "Bearer bench-key-0123456789"
else
  -- "bench-key-0123456789:" in base64 (a shop backend's Segment client
  -- sends Order Completed)
  wrk.headers["Authorization"] = "Basic YmVuY2gta2V5LTAxMjM0NTY3ODk6"
end

function request()
  counter = counter + 1
  if shop then
    local body = string.format(
      '{"type":"order.placed","id":"shop-%d-%09d",' ..
      '"ids":[{"kind":"anon","value":"visitor-%05d"}],' ..
      '"entity":{"kind":"order","id":"o-%d-%09d"},' ..
      '"context":{"ip":"203.0.113.7","locale":"de-DE",' ..
      '"page":{"path":"/checkout/complete"}},' ..
      '"props":{"order_id":"o-%d-%09d",' ..
      '"total":{"amount":4990,"currency":"EUR"},' ..
      '"lines":[{"sku":"A-100-XL","qty":2,' ..
      '"price":{"amount":2000,"currency":"EUR"}},' ..
      '{"sku":"B-200-SM","qty":1,"price":{"amount":990,"currency":"EUR"}}]}}',
      tid, counter, counter % 100000, tid, counter, tid, counter)
    return wrk.format(nil, "/v1/events", nil, body)
  end
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
