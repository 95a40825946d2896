// What the accessibility tests (tests/web/test_accessibility.py) run in every page: installed in each page
// as window.palierAudit before the page's own scripts.
window.palierAudit = {
  // With the language the page should be in: a list of what is wrong, empty when all is well.
  audit(lang) {
    const problems = [];
    const say = (what, el) => problems.push(what + (el ? ': ' + el.outerHTML.slice(0, 100) : ''));
    const text = (el) => (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim();
    const refs = (el, attr) => (el.getAttribute(attr) || '').split(/\s+/).filter(Boolean).map((id) => document.getElementById(id));
    const name = (el) => {
      if (el.hasAttribute('aria-labelledby')) return refs(el, 'aria-labelledby').map((e) => e ? text(e) : '').join(' ').trim();
      if ((el.getAttribute('aria-label') || '').trim()) return el.getAttribute('aria-label').trim();
      if (el.labels && el.labels.length) return Array.from(el.labels).map(text).join(' ').trim();
      if (['A', 'BUTTON', 'SUMMARY', 'CAPTION'].includes(el.tagName)) {
        const alts = Array.from(el.querySelectorAll('img[alt], [role=img][aria-label]'))
          .map((e) => e.getAttribute('alt') || e.getAttribute('aria-label')).join(' ');
        return (text(el) + ' ' + alts).trim();
      }
      return (el.getAttribute('title') || '').trim();
    };
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';

    if (document.documentElement.lang !== lang) say('page language ' + document.documentElement.lang + ', not ' + lang);
    if (!document.title.trim()) say('no title');
    if (document.querySelectorAll('h1').length !== 1) say(document.querySelectorAll('h1').length + ' h1');
    for (const landmark of ['header', 'nav', 'main', 'footer']) if (!document.querySelector(landmark)) say('no ' + landmark);
    const skip = document.querySelector('a[href="#main"]');
    if (!skip || document.querySelector('a[href]') !== skip || !document.querySelector('main#main')) say('no skip link first');
    for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) if (!name(el)) say('no label', el);
    for (const el of document.querySelectorAll('img')) if (!el.hasAttribute('alt')) say('no alt', el);
    for (const el of document.querySelectorAll('svg:not([aria-hidden=true])')) if (!el.getAttribute('aria-label') && !el.closest('[aria-hidden=true]')) say('unnamed picture', el);
    for (const el of document.querySelectorAll('a[href], button, summary, [role=button], [role=img], [role=progressbar]')) if (!name(el)) say('no name', el);
    for (const table of document.querySelectorAll('table')) {
      if (!table.querySelector('th')) say('no header cells', table);
      for (const th of table.querySelectorAll('th')) if (!['col', 'row', 'colgroup', 'rowgroup'].includes(th.getAttribute('scope'))) say('header cell without scope', th);
      const caption = table.querySelector('caption');
      if (!(caption && text(caption)) && !name(table)) say('table without a name', table);
    }
    // a summary is a button to a screen reader: a heading inside it is lost (the summary is named by its text)
    for (const el of document.querySelectorAll('summary :is(h1, h2, h3, h4, h5, h6, [role=heading])')) say('heading inside a summary', el);
    // where a form mixes fields to fill in that are required with some that are not, the required ones show a mark
    // by their label, and the form says once what it means; where all are required (or none), no mark
    for (const form of document.querySelectorAll('form')) {
      const fields = Array.from(form.querySelectorAll('input:not([type=hidden], [type=checkbox], [type=radio], [type=submit], [type=button]), select, textarea')).filter(visible);
      const marked = (el) => Array.from(el.labels || []).some((label) => Array.from(label.querySelectorAll('.required-mark')).some(visible));
      // a list with nothing to leave empty (no blank choice) is no optional field
      const optional = (el) => !el.required && !(el.tagName === 'SELECT' && !Array.from(el.options).some((o) => o.value === ''));
      const mixed = fields.some((el) => el.required) && fields.some(optional);
      for (const el of fields) {
        if (mixed && el.required && !marked(el)) say('required field without its mark', el);
        if ((!mixed || !el.required) && marked(el)) say('required mark where it tells nothing', el);
      }
      const note = form.querySelector('.required-note');
      if (mixed && !(note && visible(note) && text(note).includes('*'))) say('form marking its required fields without saying so', form);
    }
    const ids = new Set();
    for (const el of document.querySelectorAll('[id]')) { if (ids.has(el.id)) say('id twice: ' + el.id); ids.add(el.id); }
    for (const attr of ['aria-describedby', 'aria-labelledby', 'aria-controls']) {
      for (const el of document.querySelectorAll('[' + attr + ']')) if (refs(el, attr).some((e) => !e)) say(attr + ' to nothing', el);
    }
    // an error next to a field is read out with it
    for (const el of document.querySelectorAll('[aria-invalid=true]')) {
      if (!refs(el, 'aria-describedby').some((e) => e && text(e))) say('invalid field without its error', el);
    }
    for (const error of document.querySelectorAll('.field-error')) {
      const tied = error.id && document.querySelector('[aria-describedby~="' + error.id + '"]');
      if (!tied) say('error tied to no field', error);
      const field = tied && tied.matches('input, select, textarea') ? tied : null;
      if (field && field.getAttribute('aria-invalid') !== 'true') say('field with an error not marked invalid', field);
    }
    // contrast, from the computed colours (WCAG relative luminance)
    const rgba = (css) => { const v = css.match(/[\d.]+/g).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
    const lum = (c) => c.slice(0, 3).map((v) => v / 255).map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
      .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const ratio = (a, b) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
    const behind = (el) => {  // the first opaque background behind el; null over a picture or a gradient
      for (let e = el; e; e = e.parentElement) {
        const style = getComputedStyle(e);
        if (style.backgroundImage !== 'none') return null;
        const c = rgba(style.backgroundColor);
        if (c[3] > 0.95) return c;
      }
      return [255, 255, 255, 1];
    };
    const blend = (c, back) => c[3] >= 1 ? c : [0, 1, 2].map((i) => c[i] * c[3] + back[i] * (1 - c[3])).concat([1]);
    const seen = new Set();
    for (const el of document.querySelectorAll('body *')) {
      const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || !visible(el) || el.closest('.visually-hidden, [aria-hidden=true]')) continue;
      if (el.matches('.skip-link')) continue;  // shown only with the focus, over the header (it passes then)
      const style = getComputedStyle(el), back = behind(el);
      if (!back) continue;
      const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
      const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
      const got = ratio(blend(rgba(style.color), back), back);
      const key = style.color + back + el.className;
      if (got < need && !seen.has(key)) { seen.add(key); say('text contrast ' + got.toFixed(2) + ':1', el); }
    }
    for (const el of document.querySelectorAll('input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea')) {
      if (!visible(el) || el.closest('.code-editor')) continue;
      const back = behind(el.parentElement);
      const border = rgba(getComputedStyle(el).borderTopColor);
      if (back && ratio(blend(border, back), back) < 3) say('field border contrast ' + ratio(blend(border, back), back).toFixed(2) + ':1', el);
    }
    const placeholder = document.querySelector('[placeholder]');
    if (placeholder) {
      const back = behind(placeholder);
      const got = ratio(blend(rgba(getComputedStyle(placeholder, '::placeholder').color), back), back);
      if (got < 4.5) say('placeholder contrast ' + got.toFixed(2) + ':1', placeholder);
    }
    return problems;
  },

  // How each element that the focus can reach looks without it: the element, its parent and grandparent (a box
  // that lights up when a field inside it has the focus counts). Then the page itself takes the focus, for a
  // moment, off any field it focused on its own: Tab starts from the top.
  looks() {
    const look = (el) => [el, el.parentElement, el.parentElement?.parentElement]
      .map((e) => { if (!e) return ''; const s = getComputedStyle(e); return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow, s.borderColor, s.backgroundColor, s.color, s.textDecorationLine].join(' '); })
      .join('|');
    // Tab from the top of the page: the page itself takes the focus for a moment, off any field it focused
    const top = document.documentElement;
    top.tabIndex = -1;
    top.focus();
    top.addEventListener('blur', () => top.removeAttribute('tabindex'), { once: true });
    window.__look = look;
    window.__unfocused = new Map();
    for (const el of document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')) window.__unfocused.set(el, look(el));
  },

  // The element that has the focus: a number for it, what it is, and whether it looks focused and is in sight.
  focused() {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return null;
    if (!window.__unfocused.has(el)) window.__unfocused.set(el, '');
    if (!el.dataset.a11yStop) el.dataset.a11yStop = String(document.querySelectorAll('[data-a11y-stop]').length + 1);
    const rect = el.getBoundingClientRect();
    const box = (el.closest('.header-inner > *') || el).getBoundingClientRect();  // a part of the header's rows
    return {
      stop: el.dataset.a11yStop, what: el.outerHTML.slice(0, 100), shown: window.__look(el) !== window.__unfocused.get(el),
      inView: rect.bottom > 0 && rect.right > 0 && rect.top < innerHeight && rect.left < innerWidth,
      header: Boolean(el.closest('header')), top: box.top, middle: box.top + box.height / 2,
    };
  },
};
