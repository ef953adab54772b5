// A token's requests per day as a small bar chart (inline SVG, drawn here: no library, nothing fetched),
// with its text alternative: "N requests in 30 days, peak M on DATE".
import { el, svg } from './dom.js';

const WIDTH = 120;
const HEIGHT = 28;
const countFormat = new Intl.NumberFormat();
// `day` is a UTC day (the API's Date): shown as that day, whatever the browser's time zone.
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });

export function formatDay(day) {
  return dayFormat.format(new Date(`${day}T00:00:00Z`));
}

export function usageSummary(days) {
  const total = days.reduce((sum, day) => sum + day.count, 0);
  if (total === 0) return `No requests in ${days.length} days`;
  const peak = days.reduce((best, day) => (day.count > best.count ? day : best), days[0]);
  const requests = total === 1 ? 'request' : 'requests';
  return `${countFormat.format(total)} ${requests} in ${days.length} days, peak ${countFormat.format(peak.count)} on ${formatDay(peak.day)}`;
}

// `days`: oldest first, as the API gives them (0 for a day without requests).
export function usageSparkline(days) {
  const summary = usageSummary(days);
  const peak = Math.max(1, ...days.map((day) => day.count));
  const slot = WIDTH / Math.max(1, days.length);
  const bars = days.map((day, index) => {
    // A day with any request is at least 2 px tall, so that one request among thousands still shows.
    const height = day.count === 0 ? 0 : Math.max(2, Math.round((day.count / peak) * (HEIGHT - 2)));
    return svg('rect', {
      x: (index * slot + 0.5).toFixed(1), y: HEIGHT - 1 - height, width: Math.max(1, slot - 1).toFixed(1), height,
    });
  });
  const chart = svg('svg', {
    class: 'sparkline', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: 'img', 'aria-label': summary,
  }, svg('title', {}, summary), svg('line', { class: 'baseline', x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5 }), ...bars);
  const total = days.reduce((sum, day) => sum + day.count, 0);
  return el('span', { class: 'usage' }, chart,
    el('span', { class: 'usage-total muted', 'aria-hidden': 'true', text: countFormat.format(total) }));
}
