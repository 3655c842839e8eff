/* ticketqueue waiting-room widget: shows the visitor's live place in line over a WebSocket.
 *
 * Markup comes from {% queue_widget queue %}; everything is configured by data-* attributes
 * on the [data-ticketqueue] element (see docs/protocol.md, "The widget"). No build step.
 */
(function () {
  'use strict';

  if (window.TicketQueue && typeof window.TicketQueue.scan === 'function') {
    window.TicketQueue.scan();
    return;
  }

  // Close codes after which reconnecting cannot help (docs/protocol.md).
  var FATAL_CLOSE = {
    4401: 'identity_required', 4404: 'queue_not_found', 4409: 'device', 4410: 'queue_closed'
  };
  var BACKOFF_BASE_MS = 1000;
  var BACKOFF_CAP_MS = 30000;
  // Screen readers hear a moving position at most this often; state changes at once.
  var ANNOUNCE_EVERY_MS = 30000;
  var PARTS = ['status', 'progress', 'position', 'ahead', 'behind', 'eta', 'granted',
    'granted-text', 'checkout', 'error', 'join', 'leave', 'announce', 'alert', 'likely',
    'milestone', 'countdown', 'clock', 'figures', 'login', 'captcha', 'takeover'];
  // Refusals of a proof in a row before the widget stops trying (a bug, not a bot).
  var PROOF_ATTEMPTS = 3;

  // Protocol version 2 (docs/protocol.md): one shared `line` frame per update for every
  // socket of the queue; the widget moves its own place by it, as Place below does.
  var SUBPROTOCOL = 'ticketqueue.v2';
  var HISTORY = 10000; // departures remembered, for an exact read older than the line frames

  // The visitor's place, kept from the server's frames: the same arithmetic as
  // ticketqueue/place.py. It moves forward by the admissions and the departures ahead of it
  // since the last exact read, never below 1; a turn only ever comes as `granted`.
  function Place() {
    this.queueState = null;
    this.waiting = null;
    this.active = null;
    this.rate = null;
    this.stock = null;
    this.admittedTotal = null;
    this.departedTotal = null;
    this.departures = []; // [number, order], oldest first
    this.state = null;
    this.position = null;
    this.eta = null;
    this.soldOutLikely = false;
    this.order = null;
    this.admittedSeen = null;
    this.departedSeen = null;
    this.readIn = null;
  }

  function isInt(value) {
    return typeof value === 'number' && Math.floor(value) === value;
  }

  function newest(current, other) {
    if (!isInt(other)) {
      return current;
    }
    return current === null ? other : Math.max(current, other);
  }

  Place.prototype.apply = function (message) {
    switch (message.type) {
      case 'line':
        this.line(message);
        break;
      case 'queue_update':
        this.exact(message);
        break;
      case 'granted':
        this.state = 'admitted';
        this.position = this.eta = null;
        break;
      case 'revoked':
      case 'left':
        this.state = this.position = this.eta = this.order = null;
        break;
      case 'closed':
        this.queueState = 'closed';
        break;
      default:
        break;
    }
  };

  Place.prototype.figures = function (message) {
    if ('queue_state' in message) { this.queueState = message.queue_state; }
    if ('waiting' in message) { this.waiting = message.waiting; }
    if ('active' in message) { this.active = message.active; }
  };

  Place.prototype.exact = function (message) {
    this.figures(message);
    this.state = message.state === undefined ? null : message.state;
    this.position = message.position === undefined ? null : message.position;
    this.eta = message.eta_seconds === undefined ? null : message.eta_seconds;
    this.soldOutLikely = message.sold_out_likely === true;
    this.order = typeof message.order === 'number' ? message.order : null;
    this.admittedSeen = isInt(message.admitted_total) ? message.admitted_total : null;
    this.departedSeen = isInt(message.departed_total) ? message.departed_total : null;
    this.readIn = this.queueState;
    this.admittedTotal = newest(this.admittedTotal, this.admittedSeen);
    this.catchUp(false);
  };

  Place.prototype.line = function (message) {
    var departed = message.departed || [];
    var total = message.departed_total;
    var first;
    var last;
    var i;
    this.figures(message);
    this.rate = typeof message.rate === 'number' ? message.rate : null;
    this.stock = isInt(message.stock) ? message.stock : null;
    this.admittedTotal = newest(this.admittedTotal, message.admitted_total);
    if (isInt(total)) {
      first = total - departed.length + 1;
      last = this.departures.length ? this.departures[this.departures.length - 1][0] : -Infinity;
      for (i = 0; i < departed.length; i += 1) {
        if (first + i > last) {
          this.departures.push([first + i, departed[i]]);
        }
      }
      if (this.departures.length > HISTORY) {
        this.departures.splice(0, this.departures.length - HISTORY);
      }
      this.departedTotal = newest(this.departedTotal, total);
    }
    if (this.readIn === 'scheduled' && this.queueState !== 'scheduled' && this.queueState !== null) {
      // The pre-queue was drawn: every place changed. Unknown until the next exact read.
      this.position = this.eta = null;
      this.readIn = this.queueState;
    }
    this.catchUp(true);
  };

  Place.prototype.catchUp = function (news) {
    if (this.state !== 'waiting' || this.position === null) {
      return;
    }
    var moved = this.moved();
    if (moved) {
      this.position = Math.max(1, this.position - moved);
    }
    if (moved || news) {
      if (this.rate) {
        this.eta = Math.ceil(this.position / this.rate);
      }
      this.soldOutLikely = this.stock !== null && (this.active || 0) + this.position > this.stock;
    }
  };

  Place.prototype.moved = function () {
    var moved = 0;
    var i;
    if (this.admittedSeen !== null && this.admittedTotal !== null &&
        this.admittedTotal > this.admittedSeen) {
      moved += this.admittedTotal - this.admittedSeen;
      this.admittedSeen = this.admittedTotal;
    }
    if (this.departedSeen !== null && this.departedTotal !== null &&
        this.departedTotal > this.departedSeen) {
      for (i = this.departures.length - 1; i >= 0 && this.departures[i][0] > this.departedSeen; i -= 1) {
        if (this.order !== null && this.departures[i][1] < this.order) {
          moved += 1;
        }
      }
      this.departedSeen = this.departedTotal;
    }
    return moved;
  };

  // What the widget shows, in the shape of a version 1 queue_update.
  Place.prototype.view = function () {
    return {
      queue_state: this.queueState,
      waiting: this.waiting,
      state: this.state,
      position: this.position,
      eta_seconds: this.eta,
      sold_out_likely: this.soldOutLikely
    };
  };

  function interpolate(text, params) {
    return String(text).replace(/%\((\w+)\)s/g, function (match, name) {
      return params && params[name] !== undefined && params[name] !== null ? params[name] : match;
    });
  }

  function session() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; // storage disabled: the HttpOnly cookie route still works
    }
  }

  // Shared by every tab of this site: they show one place, so one progress.
  function shared() {
    try {
      return window.localStorage;
    } catch (e) {
      return null;
    }
  }

  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }

  function absoluteWsUrl(path) {
    if (/^wss?:\/\//.test(path)) {
      return path;
    }
    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + window.location.host + (path.charAt(0) === '/' ? '' : '/') + path;
  }

  function Widget(root) {
    var data = root.dataset;
    var self = this;
    this.root = root;
    this.slug = data.queue;
    this.wsUrl = absoluteWsUrl(data.wsUrl || '/ws/queue/' + data.queue + '/');
    this.place = new Place();
    this.checkoutUrl = data.checkoutUrl || '';
    this.statusUrl = data.statusUrl || '';
    this.workUrl = data.workUrl || '';
    this.captchaFunction = data.captcha || '';
    this.proving = false;
    this.proofAttempts = 0;
    this.heartbeatMs = Math.max(5, parseFloat(data.heartbeat) || 25) * 1000;
    try {
      this.catalog = JSON.parse(data.i18n || '{}');
    } catch (e) {
      this.catalog = {};
    }
    try {
      this.numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
    } catch (e) {
      this.numbers = { format: String };
    }
    this.el = {};
    PARTS.forEach(function (part) {
      self.el[part] = root.querySelector('[data-tq="' + part + '"]');
    });
    this.ws = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.heartbeatTimer = null;
    this.wantsPlace = data.autoJoin !== 'false';
    this.joinSent = false;
    this.finished = false; // no reconnecting: closed queue, unknown queue, no identity
    this.state = null; // null, 'waiting' or 'admitted'
    this.queueState = null;
    this.position = null;
    this.granted = null;
    this.milestone = null; // the last milestone heard: {kind, text}
    this.lastAnnounceAt = 0;
    this.lastAnnounced = '';
    // A scheduled sale: count down to its opening on the server's clock.
    this.opensAt = parseFloat(data.opensAt) || null;
    this.clockSkew = this.opensAt ? (parseFloat(data.serverNow) || Date.now() / 1000) -
      Date.now() / 1000 : 0;
    this.countdownTimer = null;
    // The wait counts down between server updates: each update resyncs it (etaAt).
    this.etaAt = null;
    this.etaTimer = null;

    if (this.el.join) {
      this.el.join.addEventListener('click', function () {
        self.wantsPlace = true;
        self.proofAttempts = 0;
        self.send({ type: 'join' });
      });
    }
    if (this.el.takeover) {
      // One device per person: take the place back from the device that took it.
      this.el.takeover.addEventListener('click', function () {
        self.el.takeover.hidden = true;
        self.finished = false;
        self.attempt = 0;
        self.clearError();
        self.connect();
      });
    }
    if (this.el.leave) {
      this.el.leave.addEventListener('click', function () {
        self.wantsPlace = false;
        self.send({ type: 'leave' });
      });
    }
    window.addEventListener('online', function () {
      if (!self.ws && !self.finished) {
        self.connect();
      }
    });
    this.setStatus(this.t('connecting'));
    if (this.opensAt) {
      this.countdownTimer = window.setInterval(function () {
        self.renderCountdown();
      }, 1000);
      this.renderCountdown();
    }
    this.connect();
  }

  Widget.prototype.t = function (key, params) {
    return interpolate(this.catalog[key] !== undefined ? this.catalog[key] : key, params);
  };

  Widget.prototype.number = function (n) {
    return n === null || n === undefined ? '–' : this.numbers.format(n);
  };

  // -- the connection -----------------------------------------------------------------------
  Widget.prototype.connect = function () {
    var self = this;
    var ws;
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.finished) {
      return;
    }
    try {
      ws = new WebSocket(this.wsUrl, [SUBPROTOCOL]);
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.joinSent = false;
    ws.onopen = function () {
      self.startHeartbeat();
    };
    ws.onmessage = function (event) {
      var message;
      self.attempt = 0; // the server answered: the next drop starts the backoff afresh
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      self.handle(message);
    };
    ws.onclose = function (event) {
      if (self.ws !== ws) {
        return;
      }
      self.ws = null;
      self.stopHeartbeat();
      self.onSocketClosed(event.code);
    };
  };

  Widget.prototype.scheduleReconnect = function () {
    var self = this;
    // Exponential backoff with full jitter: a server restart must not bring every
    // visitor back in the same second.
    var ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
    var delay = Math.max(250, Math.random() * ceiling);
    this.attempt += 1;
    this.reconnectTimer = window.setTimeout(function () {
      self.connect();
    }, delay);
  };

  Widget.prototype.onSocketClosed = function (code) {
    var self = this;
    if (code === 4401 && !this.identityFetched && this.statusUrl && window.fetch) {
      // A first visit on the site's own page: no visitor cookie yet. The REST status call
      // gives this browser its visitor id (an HttpOnly cookie); then the socket knows it.
      this.identityFetched = true;
      window.fetch(this.statusUrl, {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' }
      }).then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        self.clearError();
        self.connect();
      }).catch(function () {
        self.onSocketClosed(code);
      });
      return;
    }
    if (FATAL_CLOSE[code] && !(code === 4410 && this.granted)) {
      this.finished = true;
      if (code === 4410) {
        this.onClosed();
      }
      this.render();
      return;
    }
    if (!this.finished) {
      this.setStatus(this.t('reconnecting'));
      this.scheduleReconnect();
    }
  };

  Widget.prototype.send = function (message) {
    if (message.type === 'join' && this.root.dataset.invite) {
      message.invite = this.root.dataset.invite; // a line of invited people: the invitation
    }
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      if (message.type === 'join') {
        this.joinSent = true;
      }
    }
  };

  Widget.prototype.startHeartbeat = function () {
    var self = this;
    this.stopHeartbeat();
    this.heartbeatTimer = window.setInterval(function () {
      self.send({ type: 'heartbeat' });
    }, this.heartbeatMs);
  };

  Widget.prototype.stopHeartbeat = function () {
    window.clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  };

  // -- server messages ----------------------------------------------------------------------
  Widget.prototype.handle = function (message) {
    this.place.apply(message);
    switch (message.type) {
      case 'queue_update':
      case 'line':
        this.onUpdate(this.place.view());
        break;
      case 'granted':
        this.onGranted(message);
        break;
      case 'revoked':
        this.onEnded('revoked_' + message.reason);
        break;
      case 'left':
        this.onEnded('left_' + message.reason);
        break;
      case 'milestone':
        this.onMilestone(message);
        break;
      case 'closed':
        this.onClosed();
        break;
      case 'error':
        this.onError(message);
        break;
      default:
        break; // newer servers may say more: ignore what this widget does not know
    }
  };

  Widget.prototype.onUpdate = function (message) {
    this.queueState = message.queue_state;
    this.waiting = message.waiting;
    if (message.state === 'admitted') {
      this.render();
      return;
    }
    this.state = message.state;
    this.position = message.position;
    this.eta = message.eta_seconds;
    this.etaAt = typeof this.eta === 'number' ? Date.now() / 1000 + this.eta : null;
    // The site's stock is smaller than the buyers ahead: sent (true) only then.
    this.likelySoldOut = message.sold_out_likely === true;
    var placed = this.state === 'waiting' && typeof this.position === 'number';
    if (this.state !== 'waiting') {
      this.forgetStart(); // no place (any more): a new one starts its progress afresh
    }
    if (this.state === 'waiting') {
      this.clearError();
      this.proofAttempts = 0;
      if (placed) {
        this.rememberStart();
      }
    } else if (this.wantsPlace && !this.joinSent && this.queueState !== 'closed') {
      this.send({ type: 'join' });
    }
    this.render();
    if (placed) {
      this.announce(this.t('position', {
        position: this.number(this.position),
        eta: this.formatEta(this.eta)
      }), false);
    }
  };

  Widget.prototype.onGranted = function (message) {
    var self = this;
    var store = session();
    this.state = 'admitted';
    this.granted = { pass: message.pass, expiresAt: message.expires_at };
    this.forgetStart();
    this.clearError();
    if (store) {
      store.setItem('ticketqueue.pass.' + this.slug,
        JSON.stringify({ pass: message.pass, expires_at: message.expires_at }));
    }
    this.render();
    this.announce(this.t('granted'), true);
    this.root.dispatchEvent(new CustomEvent('ticketqueue:granted', {
      bubbles: true,
      detail: { queue: this.slug, pass: message.pass, expiresAt: message.expires_at }
    }));
    // The REST status call sets the HttpOnly pass cookie the purchase gate reads; the way
    // to checkout shows once it is set (or could not be).
    if (this.statusUrl && window.fetch) {
      window.fetch(this.statusUrl, {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' }
      }).catch(function () {}).then(function () {
        self.showCheckout();
      });
    } else {
      this.showCheckout();
    }
  };

  Widget.prototype.onEnded = function (key) {
    var store = session();
    if (store) {
      store.removeItem('ticketqueue.pass.' + this.slug);
    }
    this.forgetStart();
    this.state = null;
    this.position = null;
    this.granted = null;
    this.wantsPlace = false;
    this.ended = key;
    this.render();
    this.announce(this.t(key), true);
  };

  // Near the front, minutes to go, the pass ending: shown, said aloud, and (on a tab in the
  // background whose site was granted notifications) a system notification.
  Widget.prototype.onMilestone = function (message) {
    var text = this.t('milestone_' + message.milestone, {
      within: message.within,
      minutes: message.minutes,
      time: message.expires_at ? new Date(message.expires_at * 1000).toLocaleTimeString([], {
        hour: '2-digit', minute: '2-digit'
      }) : null
    });
    this.milestone = { kind: message.milestone, text: text };
    this.render();
    this.announce(text, true);
    if (document.hidden && window.Notification && window.Notification.permission === 'granted') {
      try {
        var title = this.root.querySelector('.tq-title');
        new window.Notification(title ? title.textContent : document.title, { body: text });
      } catch (e) {
        // some browsers allow notifications from a service worker only
      }
    }
    this.root.dispatchEvent(new CustomEvent('ticketqueue:milestone', {
      bubbles: true,
      detail: {
        queue: this.slug,
        milestone: message.milestone,
        within: message.within,
        minutes: message.minutes,
        expiresAt: message.expires_at
      }
    }));
  };

  Widget.prototype.onClosed = function () {
    this.queueState = 'closed';
    if (!this.granted) {
      this.finished = true;
      this.state = null;
      this.ended = 'closed';
    }
    this.render();
    this.announce(this.t('closed'), true);
  };

  Widget.prototype.onError = function (message) {
    var text = this.catalog['error_' + message.code] !== undefined ?
      this.t('error_' + message.code) : this.t('error', { code: message.code });
    if ((message.code === 'identity_required' || message.code === 'device_required') &&
        !this.identityFetched && this.statusUrl) {
      return; // the close that follows fetches an identity and connects again
    }
    if (message.code === 'device_replaced' && this.el.takeover) {
      this.state = null;
      this.position = null;
      this.el.takeover.hidden = false;
    }
    if (message.code === 'identity_required' || message.code === 'queue_not_found') {
      this.finished = true;
    }
    if (message.code === 'invite_required' || message.code === 'invite_invalid') {
      this.wantsPlace = false; // asking again cannot help
    }
    if (message.code === 'login_required' && this.el.login) {
      // A queue for logged-in users: come back here after logging in, and the place is taken.
      this.wantsPlace = false;
      this.el.login.href = this.root.dataset.loginUrl + '?next=' +
        encodeURIComponent(window.location.pathname + window.location.search);
      this.el.login.hidden = false;
    }
    if (message.challenge && this.wantsPlace) {
      // The queue asks a new place for proof: solve it and ask again (the error shows only
      // for a CAPTCHA that was not accepted).
      this.prove(message.challenge);
      if (message.code !== 'captcha_failed') {
        return;
      }
    }
    if (message.code === 'throttled' && this.wantsPlace && this.joinSent) {
      // Over a per-address limit (many people behind one network): ask again when it has room.
      var self = this;
      this.joinSent = false;
      window.setTimeout(function () {
        if (self.wantsPlace && self.state !== 'waiting' && !self.granted) {
          self.send({ type: 'join' });
        }
      }, (message.retry_after || 5) * 1000 * (1 + Math.random() / 2));
    }
    this.showError(text);
  };

  // -- proof (a queue's proof of work and CAPTCHA) ---------------------------------------------
  Widget.prototype.prove = function (challenge) {
    var self = this;
    if (this.proving) {
      return;
    }
    this.proofAttempts += 1;
    if (this.proofAttempts > PROOF_ATTEMPTS) {
      this.wantsPlace = false;
      return;
    }
    this.proving = true;
    this.setStatus(this.t('proving'));
    Promise.all([this.solveWork(challenge), this.solveCaptcha(challenge)]).then(function (found) {
      self.proving = false;
      if (self.wantsPlace && self.state === null && !self.granted) {
        self.send({ type: 'join', work: challenge.work || '', nonce: found[0], captcha: found[1] });
      }
    }, function (error) {
      self.proving = false;
      self.wantsPlace = false;
      self.showError(self.t('error_proof'));
      if (window.console) {
        window.console.warn('ticketqueue: could not prove', error);
      }
    });
  };

  Widget.prototype.solveWork = function (challenge) {
    var workUrl = this.workUrl;
    if (!challenge.difficulty || !challenge.work) {
      return Promise.resolve('');
    }
    return new Promise(function (resolve, reject) {
      var worker = new Worker(workUrl); // off the page's thread: the page stays responsive
      worker.onmessage = function (event) {
        worker.terminate();
        resolve(event.data.nonce);
      };
      worker.onerror = function (event) {
        worker.terminate();
        reject(event);
      };
      worker.postMessage({ work: challenge.work, difficulty: challenge.difficulty });
    });
  };

  Widget.prototype.solveCaptcha = function (challenge) {
    // Either the page shows the CAPTCHA (a global function named by the tag's captcha=
    // option: given the widget's captcha element, it returns a Promise of the token), or the
    // widget does, with the provider's script (CAPTCHA_SITE_KEY: Turnstile, hCaptcha and
    // reCAPTCHA share render(element, {sitekey, callback})).
    var data = this.root.dataset;
    var box = this.el.captcha;
    var solver = window[this.captchaFunction];
    var token;
    if (!challenge.captcha) {
      return Promise.resolve('');
    }
    if (typeof solver === 'function') {
      token = Promise.resolve(solver(box, challenge));
    } else if (data.captchaScript && data.captchaApi && box) {
      token = loadScript(data.captchaScript, data.captchaApi).then(function (api) {
        return new Promise(function (resolve, reject) {
          box.textContent = '';
          api.render(box.appendChild(document.createElement('div')), {
            sitekey: data.captchaSiteKey,
            callback: resolve,
            'error-callback': reject
          });
        });
      });
    } else {
      return Promise.reject(new Error('no way to show the CAPTCHA'));
    }
    if (box) {
      box.hidden = false;
    }
    return token.then(function (value) {
      if (box) {
        box.hidden = true;
      }
      return String(value);
    });
  };

  // The provider's script, once per page; resolves with its global once it is there.
  var scripts = {};
  function loadScript(src, name) {
    if (!scripts[src]) {
      scripts[src] = new Promise(function (resolve, reject) {
        var tag = document.createElement('script');
        tag.src = src;
        tag.async = true;
        tag.onload = function () {
          var waited = 0;
          (function ready() {
            if (window[name] && typeof window[name].render === 'function') {
              resolve(window[name]);
            } else if ((waited += 50) > 10000) {
              reject(new Error(name + ' did not load'));
            } else {
              window.setTimeout(ready, 50);
            }
          }());
        };
        tag.onerror = reject;
        document.head.appendChild(tag);
      });
    }
    return scripts[src];
  }

  Widget.prototype.showError = function (text) {
    if (this.el.error) {
      this.el.error.textContent = text;
      this.el.error.hidden = false;
    }
  };

  Widget.prototype.clearError = function () {
    if (this.el.error) {
      this.el.error.hidden = true;
      this.el.error.textContent = '';
    }
  };

  // -- showing it ---------------------------------------------------------------------------
  Widget.prototype.rememberStart = function () {
    var store = shared();
    var key = 'ticketqueue.start.' + this.slug;
    var start = store ? parseInt(store.getItem(key), 10) : NaN;
    if (!(start >= this.position)) {
      start = this.position;
      if (store) {
        store.setItem(key, String(start));
      }
    }
    this.start = start;
  };

  Widget.prototype.forgetStart = function () {
    var store = shared();
    this.start = null;
    if (store) {
      store.removeItem('ticketqueue.start.' + this.slug);
    }
  };

  Widget.prototype.renderCountdown = function () {
    var left = Math.ceil(this.opensAt - (Date.now() / 1000 + this.clockSkew));
    var scheduled = this.queueState === null || this.queueState === 'scheduled';
    var time;
    if (this.el.countdown) {
      this.el.countdown.hidden = !scheduled || this.finished;
    }
    if (!scheduled) {
      window.clearInterval(this.countdownTimer);
      return;
    }
    if (left <= 0) {
      this.setText('clock', this.t('opening'));
      return;
    }
    time = pad(Math.floor(left / 3600) % 24) + ':' + pad(Math.floor(left / 60) % 60) + ':' +
      pad(left % 60);
    this.setText('clock', left >= 86400 ?
      this.t('days', { days: this.number(Math.floor(left / 86400)), time: time }) : time);
  };

  Widget.prototype.progress = function () {
    if (this.state === 'admitted') {
      return 100;
    }
    if (this.state !== 'waiting' || !this.start || this.start <= 1) {
      return 0;
    }
    return Math.round(100 * (this.start - this.position) / (this.start - 1));
  };

  // The wait left now: the last update's estimate less the time since, at least "any moment"
  // (never below zero); the next update replaces it, up or down.
  Widget.prototype.etaLeft = function () {
    return this.etaAt === null ? null :
      Math.max(0, Math.ceil(this.etaAt - Date.now() / 1000));
  };

  Widget.prototype.renderEta = function (placed) {
    var self = this;
    var left = placed ? this.etaLeft() : null;
    this.setText('eta', placed ? this.formatEta(left) : '–');
    if (this.el.eta) {
      this.el.eta.setAttribute('data-seconds', left === null ? '' : String(left));
    }
    if (placed && left !== null && !this.etaTimer) {
      this.etaTimer = window.setInterval(function () {
        self.renderEta(self.state === 'waiting' && typeof self.position === 'number');
      }, 1000);
    } else if ((!placed || left === null) && this.etaTimer) {
      window.clearInterval(this.etaTimer);
      this.etaTimer = null;
    }
  };

  Widget.prototype.formatEta = function (seconds) {
    var minutes;
    if (seconds === null || seconds === undefined) {
      return this.t('eta_unknown');
    }
    if (seconds <= 5) {
      return this.t('eta_now');
    }
    if (seconds < 60) {
      return this.t('eta_under_minute');
    }
    minutes = Math.round(seconds / 60);
    if (minutes < 60) {
      return this.t('eta_minutes', { minutes: this.number(minutes) });
    }
    return this.t('eta_hours', {
      hours: this.number(Math.floor(minutes / 60)),
      minutes: this.number(minutes % 60)
    });
  };

  Widget.prototype.setText = function (part, text) {
    if (this.el[part] && this.el[part].textContent !== text) {
      this.el[part].textContent = text;
    }
  };

  Widget.prototype.setStatus = function (text) {
    this.setText('status', text);
  };

  Widget.prototype.render = function () {
    // Right after the pre-queue draw the server sends no place until it has read the drawn one.
    var placed = this.state === 'waiting' && this.position !== null && this.position !== undefined;
    var waiting = this.state === 'waiting';
    var status;
    if (this.granted) {
      status = this.t('granted');
    } else if (this.queueState === 'closed') {
      status = this.t('closed');
    } else if (waiting && this.queueState === 'paused') {
      status = this.t('paused');
    } else if (waiting && this.queueState === 'scheduled') {
      status = this.t('scheduled');
    } else if (waiting && !placed) {
      status = this.t('drawing');
    } else if (waiting) {
      status = this.t('waiting');
    } else if (this.proving) {
      status = this.t('proving');
    } else if (this.ended) {
      status = this.t(this.ended);
    } else {
      status = this.t('not_joined');
    }
    this.setStatus(status);
    this.setText('position', placed ? this.number(this.position) : '–');
    this.setText('ahead', placed ? this.number(this.position - 1) : '–');
    this.setText('behind', placed && this.waiting !== undefined ?
      this.number(Math.max(0, this.waiting - this.position)) : '–');
    this.renderEta(placed);
    if (this.el.progress) {
      this.el.progress.value = this.progress();
      this.el.progress.hidden = !this.granted && !(placed && this.queueState !== 'scheduled');
    }
    if (this.el.figures) {
      // Before a scheduled opening the place is not known yet: it is drawn at opening.
      this.el.figures.hidden = !placed || this.queueState === 'scheduled';
    }
    if (this.el.join) {
      this.el.join.hidden = waiting || !!this.granted || this.queueState === 'closed' ||
        this.finished || this.state === 'admitted';
    }
    if (this.el.leave) {
      this.el.leave.hidden = !waiting;
    }
    if (this.el.likely) {
      this.el.likely.hidden = !(placed && this.likelySoldOut && this.queueState !== 'closed');
    }
    if (this.el.milestone) {
      // A milestone shows while it is true: "near the front" while waiting, "ends soon"
      // while the pass lasts.
      var mark = this.milestone;
      var current = mark && (mark.kind === 'ending' ? !!this.granted : waiting);
      this.el.milestone.hidden = !current;
      this.el.milestone.textContent = current ? mark.text : '';
    }
    if (this.el.granted) {
      this.el.granted.hidden = !this.granted;
    }
    if (this.granted) {
      this.setText('granted-text', this.t('granted_until', {
        time: new Date(this.granted.expiresAt * 1000).toLocaleTimeString([], {
          hour: '2-digit', minute: '2-digit'
        })
      }));
    }
    this.root.setAttribute('data-state', this.granted ? 'granted' : (this.state || 'none'));
    if (this.ended && !this.granted && this.state === null) {
      this.root.setAttribute('data-ended', this.ended);
    } else {
      this.root.removeAttribute('data-ended');
    }
    if (this.opensAt) {
      this.renderCountdown();
    }
  };

  Widget.prototype.showCheckout = function () {
    var link = this.el.checkout;
    if (!link || !this.granted) {
      return;
    }
    if (this.checkoutUrl) {
      link.href = this.checkoutUrl;
    }
    link.hidden = false;
    link.setAttribute('data-ready', 'true');
    link.focus();
  };

  Widget.prototype.announce = function (text, urgent) {
    var now = Date.now();
    var region = urgent ? this.el.alert : this.el.announce;
    if (!region || text === this.lastAnnounced) {
      return;
    }
    if (!urgent && now - this.lastAnnounceAt < ANNOUNCE_EVERY_MS && this.lastAnnounceAt) {
      return;
    }
    this.lastAnnounceAt = now;
    this.lastAnnounced = text;
    region.textContent = text;
  };

  var widgets = [];

  function scan() {
    var roots = document.querySelectorAll('[data-ticketqueue]:not([data-ticketqueue-ready])');
    Array.prototype.forEach.call(roots, function (root) {
      root.setAttribute('data-ticketqueue-ready', 'true');
      widgets.push(new Widget(root));
    });
  }

  window.TicketQueue = { scan: scan, widgets: widgets, Place: Place };
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', scan);
  } else {
    scan();
  }
}());
