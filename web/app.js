// The dashboard: one shell, each page drawn from its URL (path and query string), so any view
// can be bookmarked, shared or reloaded.
import { installTokenForm } from './api.js';
import { replace, h } from './dom.js';
import { navigate, onNavigate } from './nav.js';
import { overviewPage } from './pages/overview.js';
import { taskListPage } from './pages/tasks.js';
import { taskPage } from './pages/task.js';
import { comparePage } from './pages/compare.js';
import { submitIndexPage, submitPage } from './pages/submit.js';
import { explorerPage } from './pages/explorer.js';

const routes = [
  { path: /^\/ui\/?$/, page: overviewPage },
  { path: /^\/ui\/tasks\/?$/, page: taskListPage },
  { path: /^\/ui\/tasks\/([A-Za-z0-9_.-]{1,64})\/?$/, page: taskPage },
  { path: /^\/ui\/compare\/?$/, page: comparePage },
  { path: /^\/ui\/submit\/?$/, page: submitIndexPage },
  { path: /^\/ui\/submit\/([a-z0-9_]{1,64})\/?$/, page: submitPage },
  { path: /^\/ui\/explorer\/?$/, page: explorerPage },
];

let leave = () => {};

function render() {
  leave();
  leave = () => {};
  const main = document.getElementById('app');
  const url = new URL(location.href);
  for (const r of routes) {
    const m = url.pathname.match(r.path);
    if (m) {
      leave = r.page(main, url, ...m.slice(1)) ?? (() => {});
      return;
    }
  }
  replace(main, h('p', {}, 'No such page. ', h('a', { href: '/ui/' }, 'Back to the overview')));
}

document.addEventListener('click', (e) => {
  const a = e.target instanceof Element ? e.target.closest('a') : null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
onNavigate(render);
window.addEventListener('popstate', render);
installTokenForm();
render();
