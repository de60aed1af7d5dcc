import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { QuarantineView } from './quarantine';
import { MRN_SYSTEM } from '../backend/demo-data';
import { callsOf, renderView, type } from '../test/render';

const rowOf = (id: number) => screen.getAllByTestId('quarantine-row').find((r) => r.dataset.id === String(id));

async function act(id: number, action: 'release' | 'discard', reason: string) {
  fireEvent.click(within(rowOf(id)!).getByTestId(`quarantine-${action}`));
  const confirm = screen.getByTestId('quarantine-confirm') as HTMLButtonElement;
  expect(confirm.disabled).toBe(true);
  type(screen.getByTestId('quarantine-reason'), reason);
  fireEvent.click(confirm);
  return screen.findByTestId('quarantine-result');
}

describe('quarantine', () => {
  it('lists reason, detail, device and value, and expands the raw payload', async () => {
    renderView(<QuarantineView />);
    await screen.findAllByTestId('quarantine-row');
    const row = rowOf(7)!;
    expect(row.dataset.device).toBe('MX-00A1');
    expect(row.dataset.reason).toBe('no_active_pairing');
    expect(row.textContent).toContain('No active pairing');
    expect(row.textContent).toContain('had no active pairing');
    expect(row.textContent).toContain('76 /min');
    expect(screen.queryByTestId('quarantine-payload')).toBeNull();
    fireEvent.click(within(row).getByTestId('quarantine-payload-toggle'));
    expect(screen.getByTestId('quarantine-payload').textContent).toContain('"serial": "MX-00A1"');
  });

  it('release while the device is still unpaired keeps the reading and says why', async () => {
    const { backend } = renderView(<QuarantineView />);
    await screen.findAllByTestId('quarantine-row');
    const result = await act(7, 'release', 'Trying before pairing');
    expect(result.textContent).toContain('released: quarantined');
    expect(result.textContent).toContain('still quarantined: device MX-00A1 had no active pairing');
    expect(callsOf(backend, 'releaseQuarantine')).toEqual([[7, 'Trying before pairing']]);
    expect(rowOf(7)).toBeTruthy();
  });

  it('release after a pairing that covers the reading stores it, shows the outcome and removes the row', async () => {
    const { backend } = renderView(<QuarantineView />);
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    await backend.pairDevice({ device_id: 'MX-00A1', system: MRN_SYSTEM, value: 'MRN-100002', from: hourAgo, until: null,
      reason: 'spare monitor sent before it was paired', replacing: null });
    await screen.findAllByTestId('quarantine-row');
    const result = await act(7, 'release', 'Pairing fixed: spare monitor at bed 3');
    expect(callsOf(backend, 'releaseQuarantine')).toEqual([[7, 'Pairing fixed: spare monitor at bed 3']]);
    expect(result.textContent).toContain('released: stored');
    expect(result.textContent).toContain('stored as telemetry');
    await waitFor(() => expect(rowOf(7)).toBeUndefined());
    expect(rowOf(8)).toBeTruthy();
  });

  it('a pairing made from now does not cover an earlier reading: it stays quarantined', async () => {
    const { backend } = renderView(<QuarantineView />);
    await backend.pairDevice({ device_id: 'MX-00A1', system: MRN_SYSTEM, value: 'MRN-100002', from: null, until: null,
      reason: null, replacing: null });
    await screen.findAllByTestId('quarantine-row');
    const result = await act(7, 'release', 'Paired just now');
    expect(result.textContent).toContain('released: quarantined');
    expect(rowOf(7)).toBeTruthy();
  });

  it('discard needs a reason and removes the row', async () => {
    const { backend } = renderView(<QuarantineView />);
    await screen.findAllByTestId('quarantine-row');
    const result = await act(8, 'discard', 'Test reading from bench check');
    expect(result.textContent).toContain('#8 discarded');
    expect(callsOf(backend, 'discardQuarantine')).toEqual([[8, 'Test reading from bench check']]);
    await waitFor(() => expect(rowOf(8)).toBeUndefined());
  });
});
