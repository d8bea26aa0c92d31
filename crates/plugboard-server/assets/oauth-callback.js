// The OAuth callback page (opened as a popup by the console): tells the window that opened it how the sign-in
// ended, then closes. The outcome is read from the page's data- attributes; the message goes only to the origin of
// PLUGBOARD_PUBLIC_URL (data-origin), where the console lives.
(function () {
  'use strict';
  var b = document.body;
  var message = {
    type: 'plugboard:oauth',
    integration_id: b.getAttribute('data-integration-id') || null,
    status: b.getAttribute('data-status')
  };
  var target = b.getAttribute('data-origin');
  if (window.opener && target) {
    try {
      window.opener.postMessage(message, target);
    } catch (e) {
      // The opener navigated elsewhere: nothing to tell.
    }
    window.setTimeout(function () { window.close(); }, 400);
  }
})();
