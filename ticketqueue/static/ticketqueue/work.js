/* ticketqueue proof of work: a Web Worker the widget starts when a queue asks for one.
 *
 * Receives {work: token, difficulty: bits}; answers {nonce} where SHA-256 of
 * "<work>:<nonce>" starts with `difficulty` zero bits (ticketqueue/core/_work.py checks it).
 * SHA-256 is written out here: crypto.subtle is asynchronous per hash (slow for millions of
 * short inputs) and missing outside secure contexts.
 */
(function () {
  'use strict';

  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2
  ].map(function (k) { return k | 0; });
  var W = new Int32Array(64);
  var message = new Uint8Array(192);

  // The first 32 bits of SHA-256(message[0:length]); length < 183 (padding fits 192 bytes).
  function firstWord(length) {
    var total = (length + 9 + 63) & ~63;
    var bits = length * 8;
    var i, t, x, y, a, b, c, d, e, f, g, h, t1, t2, offset;
    var h0 = 0x6a09e667 | 0, h1 = 0xbb67ae85 | 0, h2 = 0x3c6ef372 | 0, h3 = 0xa54ff53a | 0;
    var h4 = 0x510e527f | 0, h5 = 0x9b05688c | 0, h6 = 0x1f83d9ab | 0, h7 = 0x5be0cd19 | 0;
    message[length] = 0x80;
    for (i = length + 1; i < total - 4; i++) {
      message[i] = 0;
    }
    message[total - 4] = bits >>> 24;
    message[total - 3] = (bits >>> 16) & 255;
    message[total - 2] = (bits >>> 8) & 255;
    message[total - 1] = bits & 255;
    for (offset = 0; offset < total; offset += 64) {
      for (t = 0; t < 16; t++) {
        i = offset + t * 4;
        W[t] = (message[i] << 24) | (message[i + 1] << 16) | (message[i + 2] << 8) |
          message[i + 3];
      }
      for (t = 16; t < 64; t++) {
        x = W[t - 15];
        y = W[t - 2];
        W[t] = (W[t - 16] + (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
          W[t - 7] + (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) | 0;
      }
      a = h0; b = h1; c = h2; d = h3; e = h4; f = h5; g = h6; h = h7;
      for (t = 0; t < 64; t++) {
        t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
          ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
        t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
          ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    return h0;
  }

  function solve(work, difficulty) {
    var prefix = work + ':';
    var start = prefix.length;
    var n, digits, i, length;
    if (difficulty <= 0) {
      return '0';
    }
    for (i = 0; i < start; i++) {
      message[i] = prefix.charCodeAt(i) & 255; // the token is ASCII
    }
    for (n = 0; ; n++) {
      digits = String(n);
      length = start + digits.length;
      for (i = 0; i < digits.length; i++) {
        message[start + i] = digits.charCodeAt(i);
      }
      if (firstWord(length) >>> (32 - difficulty) === 0) {
        return digits;
      }
    }
  }

  self.onmessage = function (event) {
    var started = Date.now();
    var nonce = solve(String(event.data.work), event.data.difficulty | 0);
    self.postMessage({ nonce: nonce, ms: Date.now() - started });
  };
}());
