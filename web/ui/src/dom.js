// DOM helpers. Text from a repository or a server is always set with textContent, never
// parsed as HTML: a hostile repository cannot inject markup.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'href') {
      e.setAttribute('href', safeHref(String(v)));
    } else {
      e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(visible(String(c))));
  }
  return e;
}

// safeHref allows only relative links and http(s) URLs.
function safeHref(h) {
  try {
    const u = new URL(h, location.href);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
  } catch {
    // fall through
  }
  return '#';
}

export function badge(state, text) {
  return el('span', { class: `badge ${state}` }, text);
}

// setCell replaces the verification cell of a row.
export function setCell(row, state, text) {
  const cell = row.querySelector('.v');
  if (!cell) return;
  cell.replaceChildren(badge(state, text));
}

export function setStatus(section, statusEl, state, text) {
  section.classList.remove('verified', 'failed');
  if (state === 'verified' || state === 'failed') section.classList.add(state);
  statusEl.className = `status ${state}`;
  statusEl.textContent = text;
}

export function short(id) {
  return id.length > 16 ? id.slice(0, 16) : id;
}

// visible shows characters that change how text reads without being seen (controls,
// bidirectional overrides and isolates, zero-width characters) as their code points, so
// "\u202Egpj.exe" cannot pass for "exe.jpg".
export function visible(s) {
  return s.replace(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/g,
    (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
}
