// The queue: running jobs (worker, attempt, step, progress, elapsed time),
// queued ones in the order they will run, and webhook deliveries that
// failed, each with a retry button.

import { api, get } from './api.js';
import { h, fill, progressBar, elapsed, when, toast, keepingFocus } from './dom.js';

function jobRow(job, nowMs) {
  const running = job.state === 'running';
  return h('tr', { 'data-job': String(job.id), 'data-state': job.state },
    h('td', { class: 'num' }, String(job.id)),
    h('td', {}, h('a', { href: `#/assets/${encodeURIComponent(job.asset_id)}`, class: 'mono' }, job.asset_id)),
    h('td', {}, job.kind),
    h('td', {}, job.state),
    h('td', { class: 'mono small' }, job.worker_id ?? '—'),
    h('td', { class: 'num' }, `${job.attempt} of ${job.max_attempts}`),
    h('td', {}, running ? [job.step, ' ', progressBar({ progress: job.progress }, `Progress of job ${job.id}`)] : '—'),
    h('td', { class: 'num' }, running && job.claimed_at_ms ? elapsed(nowMs - job.claimed_at_ms)
      : (job.not_before_ms > nowMs ? `waits ${elapsed(job.not_before_ms - nowMs)}` : '—')),
    h('td', { class: 'small' }, job.note ?? job.last_error ?? ''));
}

function lastAttempt(delivery) {
  const attempts = Array.isArray(delivery.attempts) ? delivery.attempts : [];
  const last = attempts[attempts.length - 1];
  if (!last) return '—';
  return last.error ?? (last.response_status_code ? `HTTP ${last.response_status_code}` : '—');
}

export function queueView() {
  const jobs = h('tbody');
  const noJobs = h('p', { class: 'muted' }, 'Nothing is running or queued.');
  const failed = h('tbody');
  const noFailed = h('p', { class: 'muted' }, 'No failed webhook deliveries.');
  let view;
  let shownFailed = null;
  let asked = 0;
  let gone = false;
  const retry = async (id) => {
    try {
      const answer = await api('POST', `/video/v1/webhook-events/${encodeURIComponent(id)}/retry`);
      toast(`Event ${id}: ${answer.data.deliveries_requeued} deliveries sent again.`);
      await view.refresh();
    } catch (e) {
      toast(`Retry failed: ${e.message}`, 'error');
    }
  };
  const element = h('section', { 'aria-labelledby': 'queue-title' },
    h('h1', { id: 'queue-title' }, 'Queue'),
    h('section', { class: 'card', 'aria-labelledby': 'jobs-title' },
      h('h2', { id: 'jobs-title' }, 'Jobs'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'jobs' },
        h('thead', {}, h('tr', {}, ['Job', 'Asset', 'Kind', 'State', 'Worker', 'Attempt', 'Step', 'Elapsed', 'Note']
          .map((c) => h('th', { scope: 'col' }, c)))), jobs)),
      noJobs),
    h('section', { class: 'card', 'aria-labelledby': 'failed-title' },
      h('h2', { id: 'failed-title' }, 'Failed webhook deliveries'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'deliveries' },
        h('thead', {}, h('tr', {}, ['Event', 'Type', 'Endpoint', 'Asset', 'Tries', 'Last answer', 'Happened', '']
          .map((c) => h('th', { scope: 'col' }, c)))), failed)),
      noFailed));
  view = {
    element,
    async refresh() {
      const mine = ++asked;
      const [jobList, deliveries] = await Promise.all([
        get('/video/v1/jobs'),
        get('/video/v1/webhook-events?status=failed&limit=100'),
      ]);
      if (mine !== asked || gone) return false;
      keepingFocus(jobs, () => fill(jobs, jobList.data.map((j) => jobRow(j, jobList.now_ms))));
      noJobs.hidden = jobList.data.length > 0;
      const failedKey = JSON.stringify(deliveries.data);
      if (failedKey !== shownFailed) {
        shownFailed = failedKey;
        fill(failed, deliveries.data.map((d) => h('tr', { 'data-event': d.id },
        h('td', { class: 'mono small' }, d.id),
        h('td', {}, d.type),
        h('td', { class: 'mono small' }, d.endpoint),
        h('td', {}, d.asset_id ? h('a', { href: `#/assets/${encodeURIComponent(d.asset_id)}`, class: 'mono' }, d.asset_id) : '—'),
        h('td', { class: 'num' }, String(Array.isArray(d.attempts) ? d.attempts.length : 0)),
        h('td', { class: 'small' }, lastAttempt(d)),
        h('td', {}, when(d.created_at)),
        h('td', {}, h('button', { type: 'button', onclick: () => retry(d.id), 'aria-label': `Retry event ${d.id}` }, 'Retry')))));
      }
      noFailed.hidden = deliveries.data.length > 0;
      return jobList.data.length > 0;
    },
    unmount() { gone = true; },
  };
  return view;
}
