import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { QuarantineView } from './quarantine';
import { MRN_SYSTEM } from '../backend/demo-data';
import { OPERATOR, callsOf, renderView, type } from '../test/render';

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
    expect(row.dataset.reason).toBe('unpaired_device');
    expect(row.textContent).toContain('Unpaired device');
    expect(row.textContent).toContain('has no pairing');
    expect(row.textContent).toContain('76 /min');
    expect(screen.queryByTestId('quarantine-payload')).toBeNull();
    fireEvent.click(within(row).getByTestId('quarantine-payload-toggle'));
    expect(screen.getByTestId('quarantine-payload').textContent).toContain('"serial": "MX-00A1"');
  });

  it('release while the device is still unpaired keeps the reading and says why', async () => {
    const { backend } = renderView(<QuarantineView />);
    await screen.findAllByTestId('quarantine-row');
    const result = await act(7, 'release', 'Trying before pairing');
    expect(result.textContent).toContain('quarantined');
    expect(result.textContent).toContain('still not paired');
    expect(callsOf(backend, 'releaseQuarantine')).toEqual([[7, OPERATOR, 'Trying before pairing']]);
    expect(rowOf(7)).toBeTruthy();
  });

  it('release after pairing stores the reading, shows the outcome and removes the row', async () => {
    const { backend } = renderView(<QuarantineView />);
    await backend.pairDevice('MX-00A1', MRN_SYSTEM, 'MRN-100002', null, null, 'Setup');
    await screen.findAllByTestId('quarantine-row');
    const result = await act(7, 'release', 'Pairing fixed: spare monitor at bed 3');
    expect(callsOf(backend, 'releaseQuarantine')).toEqual([[7, OPERATOR, 'Pairing fixed: spare monitor at bed 3']]);
    expect(result.textContent).toContain('stored');
    expect(result.textContent).toContain('Stored for Demo Patient Charlie (MRN-100002)');
    await waitFor(() => expect(rowOf(7)).toBeUndefined());
    expect(rowOf(8)).toBeTruthy();
  });

  it('discard needs a reason and removes the row', async () => {
    const { backend } = renderView(<QuarantineView />);
    await screen.findAllByTestId('quarantine-row');
    const result = await act(8, 'discard', 'Test reading from bench check');
    expect(result.textContent).toContain('#8 discarded');
    expect(callsOf(backend, 'discardQuarantine')).toEqual([[8, OPERATOR, 'Test reading from bench check']]);
    await waitFor(() => expect(rowOf(8)).toBeUndefined());
  });
});
