import { render, screen, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { ModeBanner } from './ModeBanner';
import { MockBackend } from '../backend/mock';
import { EHR_SYNC_PAUSED } from '../backend/demo-data';
import type { Board, DegradationMode } from '../backend';
import { renderApp } from '../test/render';

const STORE_FAILING: DegradationMode = {
  id: 'store_failing', title: 'Storage failing', severity: 'critical', component: 'store',
  what_is_off: 'New device data cannot be saved.', what_still_works: 'Bedside monitors are unaffected.',
  what_to_do: 'Watch patients at the bedside monitors.', whom_to_call: 'Clinical engineering on call (disk space).',
  alarm_priority: 'medium',
};

async function board(modes: DegradationMode[]): Promise<Board> {
  return new MockBackend({ modes }).board();
}

describe('degradation banner', () => {
  it('shows each active mode with severity word, title, what to do and whom to call', async () => {
    const now = Date.now();
    render(<ModeBanner board={await board([EHR_SYNC_PAUSED, STORE_FAILING])} lastStatusAt={now} now={now} />);
    const ehr = screen.getByTestId('mode-ehr_sync_paused');
    expect(ehr.textContent).toContain('EHR sync paused');
    expect(ehr.textContent).toContain('WARNING');
    expect(ehr.textContent).toContain('Clinical engineering on call, and the EHR interface team.');
    expect(ehr.textContent).toContain(EHR_SYNC_PAUSED.what_still_works);
    const store = screen.getByTestId('mode-store_failing');
    expect(store.textContent).toContain('▲');
    expect(store.textContent).toContain('CRITICAL');
    // Critical modes come first, whatever order the pipeline sent them in.
    const order = [...screen.getByTestId('mode-banner').querySelectorAll('[data-severity]')].map((e) => e.getAttribute('data-testid'));
    expect(order).toEqual(['mode-store_failing', 'mode-ehr_sync_paused']);
    expect(screen.queryByText(/All systems normal/)).toBeNull();
  });

  it('says "All systems normal" only when a status says so', async () => {
    const now = Date.now();
    const { rerender } = render(<ModeBanner board={null} lastStatusAt={null} now={now} />);
    expect(screen.getByTestId('mode-banner').textContent).toContain('Status unknown');
    expect(screen.queryByText(/All systems normal/)).toBeNull();
    rerender(<ModeBanner board={await board([])} lastStatusAt={now} now={now} />);
    expect(within(screen.getByTestId('mode-banner')).getByText(/All systems normal/)).toBeTruthy();
  });

  it('warns when the status has gone quiet', async () => {
    const now = Date.now();
    render(<ModeBanner board={await board([])} lastStatusAt={now - 95_000} now={now} />);
    expect(screen.getByTestId('status-stale').textContent).toContain('1 min');
  });

  it('is on top of every view, and follows status pushes', async () => {
    const { backend } = await renderApp({ modes: [] }, 'alarms');
    expect((await screen.findByText(/All systems normal/)).textContent).toBeTruthy();
    backend.data.modes = [EHR_SYNC_PAUSED];
    backend.pushStatus();
    expect((await screen.findByTestId('mode-ehr_sync_paused')).textContent).toContain('EHR sync paused');
  });
});
