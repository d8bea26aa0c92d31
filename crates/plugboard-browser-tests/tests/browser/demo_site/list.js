'use strict';
const status = document.getElementById('status');
for (const button of document.querySelectorAll('button[data-account]')) {
  button.addEventListener('click', () => {
    const account = button.dataset.account;
    if (window.confirm(`Delete ${account}?`)) {
      button.closest('li').remove();
      status.textContent = `Deleted ${account}.`;
    }
  });
}
