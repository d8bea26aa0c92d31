'use strict';
document.getElementById('allow').addEventListener('click', () => {
  window.opener.postMessage({ type: 'demo-connected', account: 'ada' }, window.location.origin);
  window.close();
});
