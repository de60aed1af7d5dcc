import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { QuarantineView } from './quarantine';
import { MRN_SYSTEM } from '../backend/demo-data';
import { localToRfc3339, rfc3339ToLocal } from '../components/PairingForms';
import { callsOf, renderView, type } from '../test/render';
import type { QuarantineFilter } from '../backend';

const SPARE = 'MX-00A1-no_active_pairing';
const UNKNOWN = 'ZX-9F31-unknown_device';
const rowOf = (id: number) => screen.getAllByTestId('quarantine-row').find((r) => r.dataset.id === String(id));
const range = () => screen.getByTestId('qpage-range').textContent;

/** Release or discard one reading with a reason; the result line. */
async function actOn(id: number, action: 'release' | 'discard', reason: string) {
  fireEvent.click(within(rowOf(id)!).getByTestId(`quarantine-${action}`));
  const confirm = screen.getByTestId('quarantine-confirm') as HTMLButtonElement;
  expect(confirm.disabled).toBe(true);
  type(screen.getByTestId('quarantine-reason'), reason);
  fireEvent.click(confirm);
  return screen.findByTestId('quarantine-result');
}

/** Open a group's pair-and-release form and look the patient up. */
async function lookUp(group: string, mrn: string) {
  fireEvent.click(await screen.findByTestId(`qgroup-pair-${group}`));
  expect((screen.getByTestId('qgroup-pair-system') as HTMLInputElement).value).toBe(MRN_SYSTEM);
  type(screen.getByTestId('qgroup-pair-value'), mrn);
  fireEvent.click(screen.getByTestId('qgroup-pair-lookup'));
  return screen.findByTestId('qgroup-pair-verified');
}

describe('quarantine', () => {
  it('groups the readings by device and reason, with counts, time spans in local time and the registration', async () => {
    const { backend } = renderView(<QuarantineView />);
    const spare = await screen.findByTestId(`qgroup-${SPARE}`);
    const [first] = await backend.quarantineGroups();
    expect(screen.getByTestId(`qgroup-count-${SPARE}`).textContent).toBe('2,000');
    expect(spare.textContent).toContain('No active pairing');
    expect(spare.textContent).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]Tto \d{4}/);
    expect(spare.textContent).toContain('✓ medi-mx700');
    expect(spare.textContent).toContain(first!.first_observed.slice(0, 4));
    expect(screen.getByTestId(`qgroup-count-${UNKNOWN}`).textContent).toBe('40');
    expect(screen.getByTestId(`qgroup-${UNKNOWN}`).textContent).toContain('not registered');
    expect(screen.getByTestId('qgroup-OX-1006-implausible').textContent).toContain('outside the plausible range');
    // A pairing does not cure an implausible value: no "Pair and release" there.
    expect(screen.queryByTestId('qgroup-pair-OX-1006-implausible')).toBeNull();
    expect(screen.getByTestId('qgroup-discard-OX-1006-implausible')).toBeTruthy();
  });

  it('pairs the device from its first quarantined reading and releases the group as one action', async () => {
    const { backend } = renderView(<QuarantineView />);
    const [group] = await backend.quarantineGroups();
    const card = await lookUp(SPARE, 'MRN-100001');
    expect(card.textContent).toContain('Demo Patient Bravo');
    const from = screen.getByTestId('qgroup-pair-from') as HTMLInputElement;
    expect(localToRfc3339(from.value)).toBe(new Date(Math.floor(Date.parse(group!.first_observed) / 1000) * 1000).toISOString());
    const submit = screen.getByTestId('qgroup-pair-submit') as HTMLButtonElement;
    expect(submit.disabled).toBe(true);
    type(screen.getByTestId('qgroup-pair-backdate'), 'spare monitor sent before it was paired');
    expect(submit.disabled).toBe(true);
    type(screen.getByTestId('qgroup-pair-reason'), 'Pairing fixed: bed 3');
    expect(submit.disabled).toBe(false);
    expect(callsOf(backend, 'pairAndRelease')).toEqual([]);
    fireEvent.click(submit);
    const outcome = await screen.findByTestId('qgroup-outcome');
    expect(callsOf(backend, 'pairAndRelease')).toEqual([[{ device_id: 'MX-00A1', system: MRN_SYSTEM, value: 'MRN-100001',
      from: group!.first_observed, until: null, reason: 'spare monitor sent before it was paired', replacing: null },
    'Pairing fixed: bed 3']]);
    expect(outcome.textContent).toContain('MX-00A1 paired with Demo Patient Bravo (MRN-100001)');
    expect(outcome.textContent).toContain('2,000 stored, 0 held (no consent), 0 duplicate, 0 still quarantined');
    await waitFor(() => expect(screen.queryByTestId(`qgroup-${SPARE}`)).toBeNull());
    await waitFor(() => expect(range()).toBe('rows 1–43 of 43'));
  });

  it('pairs from the time the operator chose instead, when changed', async () => {
    const { backend } = renderView(<QuarantineView />);
    await lookUp(SPARE, 'MRN-100001');
    const hourAgo = rfc3339ToLocal(new Date(Date.now() - 3_600_000).toISOString());
    type(screen.getByTestId('qgroup-pair-from'), hourAgo);
    type(screen.getByTestId('qgroup-pair-backdate'), 'moved at bed 3 an hour ago');
    type(screen.getByTestId('qgroup-pair-reason'), 'Pairing fixed');
    fireEvent.click(screen.getByTestId('qgroup-pair-submit'));
    const outcome = await screen.findByTestId('qgroup-outcome');
    expect((callsOf(backend, 'pairAndRelease')[0]![0] as { from: string }).from).toBe(localToRfc3339(hourAgo));
    // The readings from before the chosen start (an hour of the 80 min it sent) stay where they were.
    const stored = Number(/: ([\d,]+) stored/.exec(outcome.textContent!)![1]!.replace(',', ''));
    expect(stored).toBeGreaterThan(1400);
    await waitFor(() => expect(screen.getByTestId(`qgroup-count-${SPARE}`).textContent).toBe(String(2000 - stored)));
  });

  it('asks to register an unknown device first, prefilled, then offers the pairing', async () => {
    const { backend } = renderView(<QuarantineView />);
    fireEvent.click(await screen.findByTestId(`qgroup-pair-${UNKNOWN}`));
    expect(screen.getByTestId('qgroup-register').textContent).toContain('ZX-9F31 is not registered');
    expect(screen.queryByTestId('qgroup-pair-value')).toBeNull();
    expect((screen.getByTestId('register-id') as HTMLInputElement).value).toBe('ZX-9F31');
    await waitFor(() => expect((screen.getByTestId('register-profile') as HTMLSelectElement).value).toBe('medi-mx700'));
    fireEvent.click(screen.getByTestId('register-submit'));
    await screen.findByTestId('qgroup-pair-value');
    expect(callsOf(backend, 'registerDevice')).toEqual([['ZX-9F31', 'medi-mx700', '']]);
  });

  it('discards a whole group with one reason', async () => {
    const { backend } = renderView(<QuarantineView />);
    fireEvent.click(await screen.findByTestId(`qgroup-discard-${UNKNOWN}`));
    expect((screen.getByTestId('qgroup-discard-confirm') as HTMLButtonElement).textContent).toBe('Discard 40 readings');
    type(screen.getByTestId('qgroup-discard-reason'), 'Bench test device, not a patient');
    fireEvent.click(screen.getByTestId('qgroup-discard-confirm'));
    expect((await screen.findByTestId('qgroup-outcome')).textContent).toContain('40 readings of ZX-9F31 (Unknown device) discarded');
    expect(callsOf(backend, 'discardGroup')).toEqual([['ZX-9F31', 'unknown_device', 'Bench test device, not a patient']]);
    await waitFor(() => expect(screen.queryByTestId(`qgroup-${UNKNOWN}`)).toBeNull());
  });

  it('pages through every reading, or one group\'s, a hundred at a time', async () => {
    const { backend } = renderView(<QuarantineView />);
    await waitFor(() => expect(range()).toBe('rows 1–100 of 2,043'));
    expect(screen.getAllByTestId('quarantine-row')).toHaveLength(100);
    fireEvent.click(screen.getByTestId(`qgroup-rows-${SPARE}`));
    await waitFor(() => expect(range()).toBe('rows 1–100 of 2,000'));
    expect(screen.getAllByTestId('quarantine-row').every((r) => r.dataset.device === 'MX-00A1')).toBe(true);
    expect((screen.getByTestId('qpage-prev') as HTMLButtonElement).disabled).toBe(true);
    const lastOfFirst = screen.getAllByTestId('quarantine-row').at(-1)!;
    fireEvent.click(screen.getByTestId('qpage-next'));
    await waitFor(() => expect(range()).toBe('rows 101–200 of 2,000'));
    const [{ older_than: after }] = callsOf(backend, 'quarantinePage').at(-1) as [QuarantineFilter];
    expect(after!.id).toBe(Number(lastOfFirst.dataset.id));
    fireEvent.click(screen.getByTestId('qpage-prev'));
    await waitFor(() => expect(range()).toBe('rows 1–100 of 2,000'));
    fireEvent.click(screen.getByTestId('qpage-all'));
    await waitFor(() => expect(range()).toBe('rows 1–100 of 2,043'));
  });

  it('expands a reading\'s raw payload, and still releases or discards one reading', async () => {
    const { backend } = renderView(<QuarantineView />);
    fireEvent.click(await screen.findByTestId(`qgroup-rows-${SPARE}`));
    await waitFor(() => expect(range()).toBe('rows 1–100 of 2,000'));
    const newest = Number(screen.getAllByTestId('quarantine-row')[0]!.dataset.id);
    expect(rowOf(newest)!.textContent).toContain('had no active pairing');
    fireEvent.click(within(rowOf(newest)!).getByTestId('quarantine-payload-toggle'));
    expect(screen.getByTestId('quarantine-payload').textContent).toContain('"serial": "MX-00A1"');

    const unpaired = await actOn(newest, 'release', 'Trying before pairing');
    expect(unpaired.textContent).toContain('released: quarantined');
    expect(unpaired.textContent).toContain('still quarantined: device MX-00A1 had no active pairing');

    await backend.pairDevice({ device_id: 'MX-00A1', system: MRN_SYSTEM, value: 'MRN-100002',
      from: new Date(Date.now() - 3_600_000).toISOString(), until: null, reason: 'spare monitor at bed 3', replacing: null });
    const stored = await actOn(newest, 'release', 'Pairing fixed');
    await waitFor(() => expect(stored.textContent).toContain('released: stored'));
    await waitFor(() => expect(rowOf(newest)).toBeUndefined());
    expect(screen.getByTestId(`qgroup-count-${SPARE}`).textContent).toBe('1,999');

    const next = Number(screen.getAllByTestId('quarantine-row')[0]!.dataset.id);
    await actOn(next, 'discard', 'Bench check');
    await waitFor(() => expect(rowOf(next)).toBeUndefined());
    expect(callsOf(backend, 'discardQuarantine')).toEqual([[next, 'Bench check']]);
  });

  it('lists held readings with their patient and raw payload', async () => {
    renderView(<QuarantineView />);
    fireEvent.click(screen.getByTestId('qtab-held'));
    const table = await screen.findByTestId('held-table');
    await waitFor(() => expect(within(table).getAllByTestId('held-row')).toHaveLength(9));
    const [row] = within(table).getAllByTestId('held-row');
    expect(row!.textContent).toContain('Demo Patient Charlie (MRN-100002)');
    expect(row!.textContent).toContain('no store consent');
    fireEvent.click(within(row!).getByTestId('held-payload-toggle'));
    expect(screen.getByTestId('held-payload').textContent).toContain('"serial": "MX-00B4"');
    expect(screen.getByTestId('qtab-held').getAttribute('aria-selected')).toBe('true');
  });

  it('lists rejected payloads with the reason, its detail and the raw payload', async () => {
    renderView(<QuarantineView />);
    fireEvent.click(screen.getByTestId('qtab-rejected'));
    const table = await screen.findByTestId('rejected-table');
    await waitFor(() => expect(within(table).getAllByTestId('rejected-row')).toHaveLength(4));
    const noProfile = within(table).getAllByTestId('rejected-row').find((r) => r.dataset.reason === 'no_profile')!;
    expect(noProfile.textContent).toContain('No profile');
    expect(noProfile.textContent).toContain('no device profile serves topic vigil/devices/XR-0001/ventilator');
    fireEvent.click(within(noProfile).getByTestId('rejected-payload-toggle'));
    expect(screen.getByTestId('rejected-payload').textContent).toContain('"peep": 5');
    fireEvent.click(screen.getByTestId('qtab-quarantine'));
    expect(await screen.findByTestId(`qgroup-${SPARE}`)).toBeTruthy();
  });
});
