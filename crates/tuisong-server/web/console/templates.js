// The templates view (#/templates): the app's templates as cards, and the public library
// (categories → titles → keywords) to add one from, with a preview of the card.
import { h, mount, append, errorText, templateRows, card } from '../common.js';
import { t } from './i18n.js';
import { wx, wxOk, templates } from './api.js';
import { toast, section, field, kindLabel, badge, appName } from './dom.js';

export async function viewTemplates(el) {
  const mine = h('div.card-grid', { test: 'my-templates' });
  const loadMine = async () => {
    const list = await templates();
    mount(mine, list.length === 0 ? h('div.empty', null, t('noTemplates')) : list.map((tp) => {
      const del = h('span.inline');
      const idle = () => mount(del, h('button.btn.small.danger', { test: 'delete-template', onclick: ask }, t('remove')));
      const ask = () => mount(del, h('span.muted', null, t('deleteConfirm')), ' ',
        h('button.btn.small.danger', {
          test: 'delete-template-confirm',
          onclick: async () => {
            const r = await wx('POST', '/wxaapi/newtmpl/deltemplate', { body: { priTmplId: tp.priTmplId } });
            if (!wxOk(r)) return toast(errorText(r), 'error');
            toast(t('deleted'));
            loadMine();
          },
        }, t('confirm')), ' ', h('button.btn.small', { onclick: idle }, t('cancel')));
      idle();
      return h('div.tmpl', { test: 'template', data: { id: tp.priTmplId } },
        card(tp.title, templateRows(tp), { app: appName(), test: 'template-card' }),
        h('div.tmpl-meta', null,
          badge(kindLabel(tp.type), tp.type === 3 ? 'long' : 'once'),
          h('code.ellipsis', { title: tp.priTmplId }, tp.priTmplId),
          del));
    }));
  };

  // The library: categories → titles → keywords.
  const cats = await wx('GET', '/wxaapi/newtmpl/getcategory');
  if (!wxOk(cats)) throw new Error(errorText(cats));
  const titles = h('div.titles', { test: 'library-titles' }, h('div.muted', null, t('pickCategory')));
  const picker = h('div.picker', { test: 'keyword-picker' });
  let activeCat = null;
  const catChips = h('div.chips', null, cats.data.data.map((c) => h('button.chip', {
    type: 'button', test: 'category', data: { id: c.id },
    onclick: (e) => {
      activeCat = c.id;
      catChips.querySelectorAll('.chip').forEach((x) => x.classList.toggle('active', x === e.currentTarget));
      loadTitles(c.id, 0, true);
      mount(picker);
    },
  }, c.name)));

  const loadTitles = async (cat, startAt, fresh) => {
    const r = await wx('GET', '/wxaapi/newtmpl/getpubtemplatetitles', { query: { ids: cat, start: startAt, limit: 30 } });
    if (!wxOk(r)) return toast(errorText(r), 'error');
    if (cat !== activeCat) return;
    const items = r.data.data.map((x) => h('button.title-item', {
      type: 'button', test: 'library-title', data: { tid: x.tid },
      onclick: (e) => {
        titles.querySelectorAll('.title-item').forEach((b) => b.classList.toggle('active', b === e.currentTarget));
        pickKeywords(x);
      },
    }, h('span', null, x.title), badge(kindLabel(x.type), x.type === 3 ? 'long' : 'once')));
    if (fresh) mount(titles);
    titles.querySelectorAll('[data-test=library-more]').forEach((b) => b.remove());
    append(titles, items);
    const shown = startAt + r.data.data.length;
    if (shown < r.data.count) {
      titles.appendChild(h('button.btn.small', { test: 'library-more', onclick: () => loadTitles(cat, shown, false) }, t('more')));
    }
  };

  const pickKeywords = async (title) => {
    const r = await wx('GET', '/wxaapi/newtmpl/getpubtemplatekeywords', { query: { tid: title.tid } });
    if (!wxOk(r)) return toast(errorText(r), 'error');
    const kws = r.data.data;
    const chosen = [];
    const scene = h('input', { test: 'scene-desc', maxlength: 15, placeholder: t('sceneDesc') });
    const preview = h('div.preview');
    const addBtn = h('button.btn.primary', { test: 'add-template', disabled: true }, t('addTemplate'));
    const kwList = h('div.kw-list');
    const redraw = () => {
      kwList.querySelectorAll('.kw').forEach((b) => {
        const i = chosen.indexOf(Number(b.dataset.kid));
        b.classList.toggle('active', i >= 0);
        b.querySelector('.kw-n').textContent = i >= 0 ? String(i + 1) : '';
      });
      const rows = chosen.map((kid) => kws.find((k) => k.kid === kid)).map((k) => ({ name: k.name, value: k.example }));
      mount(preview, h('div.muted.small', null, t('preview')), card(title.title, rows, { app: appName(), test: 'preview-card' }));
      addBtn.disabled = chosen.length < 2 || chosen.length > 5;
    };
    append(kwList, kws.map((k) => h('button.kw', {
      type: 'button', test: 'keyword', data: { kid: k.kid },
      onclick: () => {
        const i = chosen.indexOf(k.kid);
        if (i >= 0) chosen.splice(i, 1); else if (chosen.length < 5) chosen.push(k.kid);
        redraw();
      },
    }, h('span.kw-n'), h('span.kw-name', null, k.name), h('span.kw-ex.muted', null, k.example), h('code.kw-rule', null, k.rule))));
    addBtn.addEventListener('click', async () => {
      addBtn.disabled = true;
      const body = { tid: String(title.tid), kidList: chosen.slice(), sceneDesc: scene.value.trim() };
      const a = await wx('POST', '/wxaapi/newtmpl/addtemplate', { body });
      if (!wxOk(a)) {
        const code = a && a.data && a.data.errcode;
        toast(code === 200022 ? t('dup') : code === 200012 ? t('cap') : errorText(a), 'error');
        addBtn.disabled = false;
        return;
      }
      toast(t('added') + ' · ' + a.data.priTmplId);
      mount(picker);
      titles.querySelectorAll('.title-item').forEach((b) => b.classList.remove('active'));
      await loadMine();
    });
    mount(picker,
      h('h3', null, title.title, ' ', badge(kindLabel(title.type), title.type === 3 ? 'long' : 'once')),
      h('div.picker-cols', null,
        h('div', null, h('div.muted.small', null, t('pickKeywords')), kwList,
          field(t('sceneDesc'), scene), h('div.row', null, addBtn)),
        preview));
    redraw();
  };

  await loadMine();
  mount(el,
    section(t('myTemplates'), mine),
    section(t('library'), catChips, h('div.library', null, titles, picker)));
}
