'use strict';
const status = document.getElementById('status');
const problem = document.getElementById('problem');

document.getElementById('details').addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  problem.textContent = '';
  status.textContent = `Saved ${data.get('name')} (${data.get('scope')} scope).`;
});

document.getElementById('connect').addEventListener('click', () => {
  const popup = window.open('/popup', 'demo-authorize', 'popup,width=480,height=600');
  if (!popup) {
    problem.textContent = 'The browser blocked the authorization window: allow popups for this site, then press Connect again.';
    return;
  }
  status.textContent = 'Waiting for the authorization window…';
});

window.addEventListener('message', (event) => {
  if (event.origin !== window.location.origin) return;
  if (event.data && event.data.type === 'demo-connected') {
    status.textContent = `Connected as ${event.data.account}.`;
  }
});
