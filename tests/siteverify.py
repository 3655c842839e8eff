"""A local stand-in for a CAPTCHA provider's ``siteverify`` endpoint (Turnstile, hCaptcha and
reCAPTCHA answer alike) and its browser script: no network in tests. Tokens starting with
``good`` pass, anything else fails; every form received is kept for the test to read."""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET = "stand-in-secret"

#: The provider's browser API as the widget uses it: render(element, {sitekey, callback}).
SCRIPT = b"""
window.turnstile = {
  render: function (element, options) {
    var button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'I am human';
    button.setAttribute('data-sitekey', options.sitekey);
    button.onclick = function () { options.callback('good-' + options.sitekey); };
    element.appendChild(button);
  }
};
"""


class SiteVerify:
    def __init__(self):
        self.forms = []
        self.status = 200
        self.body = None  # None: the normal verdict
        self.hostname = "testserver"
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/siteverify"
        self.script_url = f"http://127.0.0.1:{self.server.server_port}/api.js"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                stand_in.forms.append(form)
                if stand_in.body is not None:
                    body = stand_in.body
                else:
                    ok = form.get("secret") == SECRET and form.get("response", "").startswith(
                        "good"
                    )
                    answer = {"success": ok, "hostname": stand_in.hostname}
                    if not ok:
                        answer["error-codes"] = ["invalid-input-response"]
                    body = json.dumps(answer).encode()
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript")
                self.send_header("Content-Length", str(len(SCRIPT)))
                self.end_headers()
                self.wfile.write(SCRIPT)

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def captcha_settings(stand_in):
    """The TICKETQUEUE settings that point ticketqueue at the stand-in."""
    return {
        "CAPTCHA_SECRET": SECRET,
        "CAPTCHA_VERIFY_URL": stand_in.url,
        "CAPTCHA_SCRIPT_URL": stand_in.script_url,
        "CAPTCHA_SITE_KEY": "site-key-1",
    }


@pytest.fixture
def siteverify_server():
    stand_in = SiteVerify()
    yield stand_in
    stand_in.close()


@pytest.fixture
def siteverify(siteverify_server, settings):
    """The stand-in, with this process's settings pointing at it."""
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, **captcha_settings(siteverify_server)}
    return siteverify_server
