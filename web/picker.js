// A "Browse" button and panel beside a path field, over the data root's read-only listing.
import { api } from './api.js';
import { h, replace } from './dom.js';

/** A "Browse" button beside a path field: walks the data root (GET /api/v2/files), fills the field. */
export function picker(input) {
  const panel = h('div', {
    class: 'picker',
    hidden: true,
    role: 'dialog',
    'aria-label': `pick a path for ${input.name}`,
  });
  const show = async (dir) => {
    let listing;
    try {
      listing = await api(`/api/v2/files?path=${encodeURIComponent(dir)}`);
    } catch (err) {
      replace(
        panel,
        h('p', { class: 'error' }, err.message),
        h('button', { type: 'button', onclick: () => show('.') }, 'Data root'),
      );
      return;
    }
    const up = listing.path === '.' ? null : listing.path.split('/').slice(0, -1).join('/') || '.';
    replace(
      panel,
      h(
        'div',
        { class: 'picker-head' },
        h('strong', { class: 'mono' }, listing.path),
        ' ',
        up ? h('button', { type: 'button', onclick: () => show(up) }, '↑ up') : '',
        h('button', { type: 'button', onclick: () => choose(listing.path) }, 'Use this folder'),
        h('button', { type: 'button', onclick: () => (panel.hidden = true) }, 'Close'),
      ),
      h(
        'ul',
        {},
        listing.entries.map((e) =>
          h(
            'li',
            {},
            h(
              'button',
              {
                type: 'button',
                class: 'link',
                'data-path': e.path,
                onclick: () => (e.type === 'dir' ? show(e.path) : choose(e.path)),
              },
              e.type === 'dir' ? `📁 ${e.name}/` : e.name,
            ),
          ),
        ),
      ),
      listing.truncated ? h('p', { class: 'muted' }, 'Only the first entries are shown.') : '',
    );
  };
  const choose = (p) => {
    input.value = p;
    panel.hidden = true;
    input.focus();
  };
  const button = h(
    'button',
    {
      type: 'button',
      'aria-controls': `picker-${input.name}`,
      onclick: () => {
        panel.hidden = !panel.hidden;
        if (!panel.hidden)
          void show(input.value.includes('/') ? input.value.split('/').slice(0, -1).join('/') : '.');
      },
    },
    'Browse',
  );
  panel.id = `picker-${input.name}`;
  return [button, panel];
}
