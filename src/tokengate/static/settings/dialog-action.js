// A dialog's action as every settings page runs it: the dialog busy meanwhile; a refusal shown in words in the
// dialog's error line; and when what it acts on is gone (NOT_FOUND: deleted elsewhere) the list loaded again.
import { ApiError, describeError } from './api.js';
import { busy } from './dom.js';

// `action()` does the call and, when it succeeds, closes the dialog; `words`: describeError's options.
export async function runInDialog(dialog, errorLine, action, { words = {}, reload }) {
  busy(dialog, true);
  try {
    await action();
  } catch (problem) {
    errorLine.textContent = describeError(problem, words);
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await reload();
  } finally {
    busy(dialog, false);
  }
}
