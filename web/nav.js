// In-app navigation: the URL changes (history), then the page is redrawn from it.
let redraw = () => {};

export function onNavigate(fn) {
  redraw = fn;
}

export function navigate(href, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  redraw();
}
