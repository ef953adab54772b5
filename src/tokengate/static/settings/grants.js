// Permission sets in a list and on a form, for service tokens and members alike: a grant in words
// ("Job Admin · warehouse"), and the editor that picks sets with their scope (all projects, or chosen ones).
// What a form may offer (what the plan allows, what the caller may give) is the page's `offer`, from the
// server's answers; the editor only shows it, and the server decides again when the form is saved.
import { FormProblem, el } from './dom.js';

export function setName(sets, key) {
  const found = sets.find((set) => set.key === key);
  return found ? found.name : key;
}

function levelOf(sets, key) {
  const found = sets.find((set) => set.key === key);
  return found ? found.level : 'PROJECT';
}

export function grantList(grants, sets) {
  if (grants.length === 0) return el('span', { class: 'muted', text: 'None' });
  const list = el('ul', { class: 'grants' });
  for (const grant of grants) {
    const scope = grant.allProjects
      ? (levelOf(sets, grant.permissionSet) === 'ACCOUNT' ? 'account' : 'all projects')
      : grant.projects.map((project) => project.name).join(', ');
    list.append(el('li', {}, el('span', { class: 'set', text: setName(sets, grant.permissionSet) }), ` · ${scope}`));
  }
  return list;
}

// The same text for the same grants in any order: whether a form changed them.
export function grantKey(grants) {
  const normalised = grants
    .map((grant) => ({
      permissionSet: grant.permissionSet,
      allProjects: grant.allProjects,
      projectIds: [...(grant.projectIds || (grant.projects || []).map((project) => project.id))].sort(),
    }))
    .sort((a, b) => a.permissionSet.localeCompare(b.permissionSet));
  return JSON.stringify(normalised);
}

const ANYWHERE = { allowed: true, note: '' };

// One choice of `offered` (see renderGrantEditor) with its note, described by that note; disabled when refused
// and not already held (what is held can always be removed).
function choice(type, id, name, value, label, checked, answer, held) {
  const noteId = `${id}-why`;
  const input = el('input', {
    type, id, name, value, checked, disabled: !answer.allowed && !held,
    'aria-describedby': answer.allowed ? null : noteId,
  });
  if (type === 'checkbox') input.dataset.project = '1';
  return el('div', { class: `check${answer.allowed ? '' : ' refused'}` }, input,
    el('label', { for: id, text: label }),
    answer.allowed ? null : el('span', { id: noteId, class: 'hint', text: answer.note }));
}

function grantOption(set, granted, offered, { projects, idPrefix }) {
  const id = `${idPrefix}-${set.key}`;
  const checkbox = el('input', {
    type: 'checkbox', id, value: set.key, 'data-set': set.key, 'aria-describedby': `${id}-note`,
    checked: Boolean(granted), disabled: !offered.available && !granted,
  });
  const wrapper = el('div', { class: `grant-option${offered.available ? '' : ' unavailable'}` },
    el('div', { class: 'check' }, checkbox,
      el('label', { for: id, text: set.name }),
      el('span', { id: `${id}-note`, class: 'hint', text: offered.note })),
  );
  if (set.level === 'ACCOUNT') return wrapper;
  const everywhere = offered.everywhere || ANYWHERE;
  const onProject = offered.project || (() => ANYWHERE);
  const chosen = granted && !granted.allProjects ? new Set(granted.projects.map((project) => project.id)) : new Set();
  // A granted project the caller cannot list stays in the grant (and on the form) all the same.
  const listed = [...projects, ...(granted ? granted.projects : []).filter((held) => !projects.some((p) => p.id === held.id))];
  const allChecked = granted ? granted.allProjects : everywhere.allowed;
  const scopeName = `${id}-scope`;
  const projectBoxes = listed.length === 0
    ? [el('p', { class: 'hint', text: 'This account has no projects yet.' })]
    : listed.map((project) => choice('checkbox', `${id}-p-${project.id}`, null, project.id, project.name,
      chosen.has(project.id), onProject(project.id), chosen.has(project.id)));
  const choices = el('fieldset', { class: 'project-choices', hidden: allChecked },
    el('legend', { class: 'visually-hidden', text: `Chosen projects of ${set.name}` }), ...projectBoxes);
  const all = choice('radio', `${scopeName}-all`, scopeName, 'all', 'All projects', allChecked, everywhere,
    Boolean(granted && granted.allProjects));
  const some = choice('radio', `${scopeName}-chosen`, scopeName, 'chosen', 'Chosen projects', !allChecked, ANYWHERE, false);
  const scope = el('fieldset', { class: 'scope', hidden: !granted },
    el('legend', { text: `Projects for ${set.name}` }), all, some, choices);
  all.querySelector('input').addEventListener('change', () => { choices.hidden = true; });
  some.querySelector('input').addEventListener('change', () => { choices.hidden = false; });
  checkbox.addEventListener('change', () => { scope.hidden = !checkbox.checked; });
  wrapper.append(scope);
  return wrapper;
}

// Fills `container` with one option per set of `sets`, `grants` checked. offer(set, granted) answers
//   { available, note, everywhere: { allowed, note }, project(projectId): { allowed, note } }:
// whether the set may be chosen at all (sets that may not, and are not held, are listed together under
// `unavailableTitle(count)`), the hint under its name, and for a project-level set whether it may cover all
// projects and each project (refused choices are disabled, with their note).
export function renderGrantEditor(container, { sets, projects, grants, idPrefix, offer, unavailableTitle }) {
  const byKey = new Map(grants.map((grant) => [grant.permissionSet, grant]));
  const options = { projects, idPrefix };
  const offers = new Map(sets.map((set) => [set.key, offer(set, byKey.get(set.key))]));
  const offered = sets.filter((set) => offers.get(set.key).available || byKey.has(set.key));
  const refused = sets.filter((set) => !offers.get(set.key).available && !byKey.has(set.key));
  container.replaceChildren(...offered.map((set) => grantOption(set, byKey.get(set.key), offers.get(set.key), options)));
  if (refused.length > 0) {
    container.append(el('details', { class: 'unavailable-sets' },
      el('summary', { text: unavailableTitle(refused.length) }),
      ...refused.map((set) => grantOption(set, null, offers.get(set.key), options))));
  }
}

// The grants the editor holds, as GrantInput; a FormProblem when a set has no scope.
export function readGrants(container, sets, { required = true } = {}) {
  const grants = [];
  for (const option of container.querySelectorAll('.grant-option')) {
    const box = option.querySelector('input[data-set]');
    if (!box.checked) continue;
    const set = sets.find((candidate) => candidate.key === box.value);
    if (set.level === 'ACCOUNT') {
      grants.push({ permissionSet: set.key, allProjects: true, projectIds: [] });
      continue;
    }
    const all = option.querySelector('input[type="radio"][value="all"]').checked;
    const projectIds = [...option.querySelectorAll('input[data-project]:checked')].map((input) => input.value);
    if (!all && projectIds.length === 0) {
      throw new FormProblem(`Choose at least one project for ${set.name}, or choose All projects.`);
    }
    grants.push({ permissionSet: set.key, allProjects: all, projectIds: all ? [] : projectIds });
  }
  if (required && grants.length === 0) throw new FormProblem('Choose at least one permission set.');
  return grants;
}
