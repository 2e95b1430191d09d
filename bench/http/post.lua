-- wrk script: POST a ~420-byte JSON event with the headers the test
-- webhook channel expects.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.headers["X-Event-Type"] = "order.placed"
wrk.body = '{"type":"order.placed","messageId":"5f0c8e3a-1d2b-4c1e-9a77-0b3c1d2e4f50",' ..
  '"userId":"user-48121","anonymousId":"a1b2c3d4-e5f6-4711",' ..
  '"timestamp":"2026-11-23T10:15:30.123Z","context":{"ip":"203.0.113.7",' ..
  '"locale":"de-DE","page":{"path":"/checkout/complete"}},' ..
  '"properties":{"order_id":"o-981234","total":49.90,"currency":"EUR",' ..
  '"products":[{"sku":"A-100-XL","quantity":2,"price":20.00},' ..
  '{"sku":"B-200-SM","quantity":1,"price":9.90}]}}'
