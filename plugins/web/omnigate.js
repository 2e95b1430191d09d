/*
 * omnigate.js: the site snippet of omnigate's web channel, served by the
 * plugin at GET /v1/omnigate.js. A shop includes it on its pages:
 *
 *   <script>
 *     window.omnigateConfig = { writeKey: "wk_live_...",
 *                               endpoint: "https://events.shop.example/v1" };
 *   </script>
 *   <script src="https://events.shop.example/v1/omnigate.js" async></script>
 *
 * It keeps an anonymous id in first-party storage, sends a page view on
 * load, and offers omnigate.track(name, properties),
 * omnigate.identify(userId, traits, signature) and omnigate.page(). Calls
 * go to the Segment-compatible batch endpoint, a few at a time, each with
 * its own messageId: the queue lives in localStorage until the server
 * answered 200, so a call survives a page change or a failed request and
 * is sent again with backoff; a repeat is a duplicate on the server.
 */
(function (w) {
  "use strict";
  if (w.omnigate && w.omnigate.ready) {
    return;
  }
  var cfg = w.omnigateConfig || {};
  var QKEY = "omnigate.queue", AKEY = "omnigate.anonymousId",
    UKEY = "omnigate.userId", SKEY = "omnigate.signature";
  var store = (function () {
    try {
      var k = "omnigate.test";
      w.localStorage.setItem(k, k);
      w.localStorage.removeItem(k);
      return w.localStorage;
    } catch (e) {
      var m = {};
      return {
        getItem: function (k) { return m.hasOwnProperty(k) ? m[k] : null; },
        setItem: function (k, v) { m[k] = String(v); },
        removeItem: function (k) { delete m[k]; }
      };
    }
  })();

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) {
      return w.crypto.randomUUID();
    }
    var b = new Uint8Array(16), i, h = [];
    (w.crypto || w.msCrypto).getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i = 0; i < 16; i++) {
      h.push((b[i] + 0x100).toString(16).slice(1));
    }
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" +
      h.slice(6, 8).join("") + "-" + h.slice(8, 10).join("") + "-" +
      h.slice(10).join("");
  }

  function anonymousId() {
    var id = store.getItem(AKEY);
    if (!id) {
      id = uuid();
      store.setItem(AKEY, id);
    }
    return id;
  }

  function load() {
    try {
      return JSON.parse(store.getItem(QKEY) || "[]");
    } catch (e) {
      return [];
    }
  }

  function save(q) {
    store.setItem(QKEY, JSON.stringify(q.slice(-500))); /* bounded */
  }

  var delay = 1000, timer = null, sending = false,
    listeners = [];

  function context() {
    var c = {
      page: {
        path: w.location.pathname, url: w.location.href,
        title: w.document.title, referrer: w.document.referrer
      },
      userAgent: w.navigator.userAgent,
      locale: w.navigator.language,
      library: { name: "omnigate.js", version: "0.1.0" }
    };
    var sig = store.getItem(SKEY);
    if (sig) {
      c.omnigate = { signature: sig };
    }
    return c;
  }

  function enqueue(call) {
    var now = new Date().toISOString();
    call.messageId = "og-" + uuid();
    call.anonymousId = anonymousId();
    var uid = store.getItem(UKEY);
    if (uid && !call.userId) {
      call.userId = uid;
    }
    call.originalTimestamp = now;
    call.context = context();
    var q = load();
    q.push(call);
    save(q);
    schedule(50);
  }

  function schedule(ms) {
    if (timer === null) {
      timer = w.setTimeout(flush, ms);
    }
  }

  function flush() {
    timer = null;
    if (sending) {
      return;
    }
    var q = load();
    if (q.length === 0) {
      return;
    }
    var batch = q.slice(0, 20), sent = new Date().toISOString(), i;
    for (i = 0; i < batch.length; i++) {
      batch[i].sentAt = sent;
    }
    sending = true;
    w.fetch((cfg.endpoint || "/v1") + "/batch", {
      method: "POST",
      mode: "cors",
      keepalive: true,
      headers: {
        "Content-Type": "application/json",
        "Authorization": "Basic " + w.btoa((cfg.writeKey || "") + ":")
      },
      body: JSON.stringify({ batch: batch })
    }).then(function (r) {
      sending = false;
      if (r.status === 200 || (r.status >= 400 && r.status < 429 &&
                               r.status !== 408)) {
        /* done, or refused for good: either way not sent again */
        var rest = load(), ids = {}, j;
        for (j = 0; j < batch.length; j++) {
          ids[batch[j].messageId] = true;
        }
        save(rest.filter(function (c) { return !ids[c.messageId]; }));
        delay = 1000;
        notify(r.status, batch.length);
        schedule(0);
      } else {
        retry(r.headers.get("Retry-After"));
      }
    }, function () {
      sending = false;
      retry(null);
    });
  }

  function retry(after) {
    var s = parseInt(after, 10);
    delay = Math.min(delay * 2, 60000);
    schedule(s > 0 ? s * 1000 : delay * (0.5 + Math.random() / 2));
  }

  function notify(status, n) {
    var i;
    for (i = 0; i < listeners.length; i++) {
      try {
        listeners[i](status, n);
      } catch (e) { /* a listener's error is its own */ }
    }
  }

  w.omnigate = {
    ready: true,
    anonymousId: anonymousId,
    page: function (name, properties) {
      enqueue({ type: "page", name: name || w.document.title,
                properties: properties || {} });
    },
    track: function (event, properties) {
      enqueue({ type: "track", event: event, properties: properties || {} });
    },
    /* signature: the hex HMAC-SHA256 of userId with the web channel's
     * identity_secret, computed by the site's backend; without it the
     * user id is an unverified key. */
    identify: function (userId, traits, sig) {
      store.setItem(UKEY, userId);
      if (sig) {
        store.setItem(SKEY, sig);
      } else {
        store.removeItem(SKEY);
      }
      enqueue({ type: "identify", userId: userId, traits: traits || {} });
    },
    flush: function () { schedule(0); },
    pending: function () { return load().length; },
    onSent: function (f) { listeners.push(f); }
  };
  if (cfg.autoPage !== false) {
    w.omnigate.page();
  }
  schedule(0); /* what an earlier page left */
})(window);
