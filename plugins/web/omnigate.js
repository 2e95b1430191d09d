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
 * It asks the server for a visitor session once (POST /v1/session: an
 * anonymous id and the session token that proves it, docs/security.md),
 * keeps both in first-party storage, sends a page view on
 * load, and offers omnigate.track(name, properties),
 * omnigate.identify(userId, traits, signature) and omnigate.page(); and
 * omnigate.chat(), a minimal message panel for live messages (long-polls
 * GET /v1/messages, replies with POST /v1/messages). Calls
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
    UKEY = "omnigate.userId", SKEY = "omnigate.signature",
    TKEY = "omnigate.session";
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

  /* The visitor's anonymous id, issued by the server with its session
   * token ("ANON.TOKEN"); null until the session is there. An id this
   * browser made itself (an older snippet) has no session and is
   * replaced: the anonymous id is no secret, the token is. */
  function anonymousId() {
    return store.getItem(TKEY) ? store.getItem(AKEY) : null;
  }

  var asking = null;

  function session() {
    if (store.getItem(TKEY)) {
      return Promise.resolve(store.getItem(TKEY));
    }
    if (asking) {
      return asking;
    }
    asking = w.fetch((cfg.endpoint || "/v1") + "/session", {
      method: "POST", mode: "cors",
      headers: { "Content-Type": "application/json", "Authorization": auth() },
      body: "{}"
    }).then(function (r) {
      if (r.status !== 200) {
        throw new Error("HTTP " + r.status);
      }
      return r.json();
    }).then(function (b) {
      store.setItem(AKEY, b.anonymousId);
      store.setItem(TKEY, b.session);
      asking = null;
      return b.session;
    }, function (e) {
      asking = null;
      throw e;
    });
    return asking;
  }

  function headers(json) {
    var h = { "Authorization": auth() };
    if (json) {
      h["Content-Type"] = "application/json";
    }
    if (store.getItem(TKEY)) {
      h["X-Omnigate-Session"] = store.getItem(TKEY);
    }
    return h;
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
    if (!anonymousId()) {
      sending = true;
      session().then(function () {
        sending = false;
        schedule(0);
      }, function () {
        sending = false;
        retry(null);
      });
      return;
    }
    var batch = q.slice(0, 20), sent = new Date().toISOString(), i;
    for (i = 0; i < batch.length; i++) {
      batch[i].sentAt = sent;
      if (!batch[i].anonymousId) {
        batch[i].anonymousId = anonymousId();
      }
    }
    sending = true;
    w.fetch((cfg.endpoint || "/v1") + "/batch", {
      method: "POST",
      mode: "cors",
      keepalive: true,
      headers: headers(true),
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

  function auth() {
    return "Basic " + w.btoa((cfg.writeKey || "") + ":");
  }

  /* Live messages: a long-poll loop, and replies. */
  var polling = false, pollDelay = 1000, onMessages = [], lastConversation;

  function poll() {
    session().then(function () {
      return w.fetch((cfg.endpoint || "/v1") + "/messages?anonymousId=" +
                     encodeURIComponent(anonymousId()), {
        mode: "cors", headers: headers(false)
      });
    }).then(function (r) {
      if (r.status === 401) { /* a session the server no longer knows */
        store.removeItem(TKEY);
      }
      if (r.status !== 200) {
        throw new Error("HTTP " + r.status);
      }
      return r.json();
    }).then(function (body) {
      var i, j;
      pollDelay = 1000;
      for (i = 0; i < body.messages.length; i++) {
        if (body.messages[i].conversation) {
          lastConversation = body.messages[i].conversation;
        }
        for (j = 0; j < onMessages.length; j++) {
          try {
            onMessages[j](body.messages[i]);
          } catch (e) { /* the listener's own */ }
        }
      }
      if (polling) {
        w.setTimeout(poll, body.known === false ? 2000 : 0);
      }
    }, function () {
      pollDelay = Math.min(pollDelay * 2, 60000);
      if (polling) {
        w.setTimeout(poll, pollDelay);
      }
    });
  }

  function listen(f) {
    onMessages.push(f);
    if (!polling) {
      polling = true;
      poll();
    }
  }

  function reply(text, conversation) {
    return session().then(function () {
      return w.fetch((cfg.endpoint || "/v1") + "/messages", {
        method: "POST", mode: "cors",
        headers: headers(true),
        body: JSON.stringify({ anonymousId: anonymousId(), text: text,
                               conversation: conversation || lastConversation })
      });
    }).then(function (r) { return r.status; });
  }

  function chat() {
    var d = w.document, box = d.getElementById("omnigate-chat");
    if (box) {
      return box;
    }
    box = d.createElement("div");
    box.id = "omnigate-chat";
    box.style.cssText = "position:fixed;right:16px;bottom:16px;width:280px;" +
      "max-height:360px;overflow:auto;background:#fff;border:1px solid " +
      "#ccc;border-radius:8px;padding:8px;font:14px sans-serif;" +
      "box-shadow:0 2px 8px rgba(0,0,0,.2)";
    var list = d.createElement("div"), form = d.createElement("form"),
      input = d.createElement("input");
    list.className = "omnigate-messages";
    input.placeholder = "Write a message";
    input.style.cssText = "width:100%;box-sizing:border-box";
    form.appendChild(input);
    box.appendChild(list);
    box.appendChild(form);
    d.body.appendChild(box);
    function show(text, mine) {
      var p = d.createElement("p");
      p.className = mine ? "omnigate-mine" : "omnigate-theirs";
      p.textContent = text;
      p.style.cssText = "margin:4px 0;text-align:" + (mine ? "right" : "left");
      list.appendChild(p);
      list.scrollTop = list.scrollHeight;
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (input.value) {
        show(input.value, true);
        reply(input.value);
        input.value = "";
      }
    });
    listen(function (m) {
      if (m.text) {
        show(m.text, false);
      }
    });
    return box;
  }

  w.omnigate = {
    ready: true,
    messages: listen,
    stopMessages: function () { polling = false; },
    reply: reply,
    chat: chat,
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
