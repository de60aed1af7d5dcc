import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { FleetView } from './fleet';
import { MRN_SYSTEM, demoData, type HeardDevice } from '../backend/demo-data';
import type { Device } from '../backend';
import { callsOf, choose, renderApp, renderView, type } from '../test/render';

const ids = () => screen.getAllByTestId(/^fleet-row-/).map((r) => r.getAttribute('data-testid')!.replace('fleet-row-', ''));
const row = (id: string) => screen.getByTestId(`fleet-row-${id}`);

describe('fleet', () => {
  it('lists all 30 devices of the ward, each state as shape, word and a data-state, worst first', async () => {
    renderView(<FleetView />);
    await waitFor(() => expect(ids()).toHaveLength(30));
    expect(screen.getByTestId('fleet-count').textContent).toBe('30 of 30 devices');
    expect(ids().slice(0, 3)).toEqual(['ZX-9F31', 'MX-00B7', 'OX-1005']);
    expect(row('MX-00B7').dataset.state).toBe('offline');
    expect(screen.getByTestId('fleet-state-MX-00B7').textContent).toBe('✖ Offline');
    expect(screen.getByTestId('fleet-state-OX-1005').textContent).toBe('◌ Stale');
    expect(screen.getByTestId('fleet-state-OX-1090').textContent).toBe('○ Never seen');
    expect(screen.getByTestId('fleet-state-ZX-9F31').textContent).toBe('? Unknown');
    expect(screen.getByTestId('fleet-state-OX-1000').textContent).toBe('● Online');
    const bed1 = row('OX-1000').textContent!;
    for (const text of ['Bed 1 oximeter', 'acme-ox100', 'Demo Patient Alpha (MRN-100000)', '12 /min', 'DEMO', '1.9.0']) {
      expect(bed1).toContain(text);
    }
    // The spare monitor's 2,000 quarantined readings; the wearable's low battery says so in words too.
    expect(row('MX-00A1').textContent).toContain('2,000');
    expect(row('00-1B-C5-0C-00-00-00-04').textContent).toContain('▼ 12 %');
    expect(row('OX-1006').textContent).toContain('−42.0 s');
  });

  it('shows when each device was last heard in local time with the zone, and how long ago', async () => {
    renderView(<FleetView />);
    const heard = await screen.findByTestId('fleet-last-heard-MX-00B7');
    // The tests run in America/New_York.
    expect(heard.textContent).toMatch(/^\d\d:\d\d:\d\d E[SD]T 7 min ago$/);
    expect(heard.title).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T$/);
    expect(screen.getByTestId('fleet-last-heard-OX-1090').textContent).toBe('never');
  });

  it('filters by id, label, patient or profile, and by state', async () => {
    renderView(<FleetView />);
    await waitFor(() => expect(ids()).toHaveLength(30));
    type(screen.getByTestId('fleet-filter'), 'bed 7');
    expect(ids()).toEqual(['MX-00B7']);
    type(screen.getByTestId('fleet-filter'), 'charlie');
    expect(ids()).toEqual(['MX-00B4']);
    type(screen.getByTestId('fleet-filter'), 'VITABAND');
    expect(ids()).toHaveLength(6);
    choose(screen.getByTestId('fleet-state-filter'), 'never_seen');
    expect(ids()).toEqual(['00-1B-C5-0C-00-00-00-05']);
    type(screen.getByTestId('fleet-filter'), '');
    expect(ids()).toEqual(['00-1B-C5-0C-00-00-00-05', 'OX-1090']);
    type(screen.getByTestId('fleet-filter'), 'no such device');
    expect(screen.getByText('No device matches.')).toBeTruthy();
  });

  it('sorts by the clicked column, and reverses on a second click', async () => {
    renderView(<FleetView />);
    await waitFor(() => expect(ids()).toHaveLength(30));
    fireEvent.click(screen.getByTestId('fleet-sort-device'));
    expect(ids()).toEqual([...ids()].sort((a, b) => a.localeCompare(b)));
    expect(ids()[0]).toBe('00-1B-C5-0C-00-00-00-00');
    fireEvent.click(screen.getByTestId('fleet-sort-device'));
    expect(ids()[0]).toBe('ZX-9F31');
    expect(screen.getByTestId('fleet-sort-device').closest('th')!.getAttribute('aria-sort')).toBe('descending');
    fireEvent.click(screen.getByTestId('fleet-sort-quarantined'));
    fireEvent.click(screen.getByTestId('fleet-sort-quarantined'));
    expect(ids().slice(0, 3)).toEqual(['MX-00A1', 'ZX-9F31', 'OX-1006']);
    fireEvent.click(screen.getByTestId('fleet-sort-battery'));
    // Devices that report no battery first, then the lowest charge.
    const battery = (id: string) => (row(id) as HTMLTableRowElement).cells[8]!.textContent!;
    expect(battery(ids()[0]!)).toBe('—');
    expect(ids().map(battery).filter((b) => b !== '—')[0]).toBe('▼ 12 %');
  });

  it('registers an unknown sender prefilled, then pairs it with a verified patient, each step confirmed', async () => {
    const { backend } = renderView(<FleetView />);
    fireEvent.click(await screen.findByTestId('fleet-register-ZX-9F31'));
    // Only unknown senders offer Register.
    expect(screen.queryByTestId('fleet-register-MX-00A1')).toBeNull();
    expect((screen.getByTestId('register-id') as HTMLInputElement).value).toBe('ZX-9F31');
    await waitFor(() => expect((screen.getByTestId('register-profile') as HTMLSelectElement).value).toBe('medi-mx700'));
    type(screen.getByTestId('register-label'), 'Bay 2 monitor');
    fireEvent.click(screen.getByTestId('register-submit'));
    await screen.findByTestId('onboard-registered');
    expect(callsOf(backend, 'registerDevice')).toEqual([['ZX-9F31', 'medi-mx700', 'Bay 2 monitor']]);
    await waitFor(() => expect(row('ZX-9F31').dataset.state).toBe('online'));
    // The pairing form is for this device alone, and pairs nothing until the patient is confirmed.
    const device = screen.getByTestId('pair-device') as HTMLSelectElement;
    expect([...device.options].map((o) => o.value)).toEqual(['ZX-9F31']);
    type(screen.getByTestId('pair-value'), 'MRN-100001');
    fireEvent.click(screen.getByTestId('pair-lookup'));
    expect((await screen.findByTestId('pair-verified')).textContent).toContain('Demo Patient Bravo');
    expect(callsOf(backend, 'pairDevice')).toEqual([]);
    fireEvent.click(screen.getByTestId('pair-confirm'));
    await waitFor(() => expect(row('ZX-9F31').textContent).toContain('Demo Patient Bravo (MRN-100001)'));
    expect(callsOf(backend, 'pairDevice')).toEqual([[{ device_id: 'ZX-9F31', system: MRN_SYSTEM, value: 'MRN-100001',
      from: null, until: null, reason: null, replacing: null }]]);
  });

  it('shows a device\'s pairing history when its row is clicked', async () => {
    const { backend } = renderView(<FleetView />);
    fireEvent.click(await screen.findByTestId('fleet-row-MX-00A0'));
    const history = await screen.findByTestId('fleet-history');
    await waitFor(() => expect(within(history).getAllByTestId('pairing-row')).toHaveLength(2));
    const [current, past] = within(history).getAllByTestId('pairing-row');
    expect(current!.dataset.open).toBe('true');
    expect(current!.textContent).toContain('Demo Patient Alpha');
    expect(past!.textContent).toContain('Demo Patient Oscar');
    expect(past!.textContent).toContain('R. Lindqvist');
    expect(callsOf(backend, 'pairingHistory')).toEqual([['MX-00A0']]);
    fireEvent.click(screen.getByTestId('fleet-history-OX-1090'));
    await waitFor(() => expect(screen.getByTestId('fleet-history').textContent).toContain('Never paired.'));
    fireEvent.click(screen.getByTestId('fleet-drawer-close'));
    expect(screen.queryByTestId('fleet-history')).toBeNull();
  });

  it('handles a fleet of 500 devices', async () => {
    const base = demoData(new Date());
    const devices: Device[] = Array.from({ length: 500 }, (_, i) => ({ ...base.devices[4]!, device_id: `MX-${String(i).padStart(4, '0')}`,
      label: `Monitor ${i}` }));
    const heard: HeardDevice[] = devices.map((d) => ({ ...base.heard[4]!, device_id: d.device_id }));
    renderView(<FleetView />, { devices, heard, quarantine: [] });
    await waitFor(() => expect(ids()).toHaveLength(500), { timeout: 5000 });
    type(screen.getByTestId('fleet-filter'), 'monitor 499');
    expect(ids()).toEqual(['MX-0499']);
  });

  it('is the first view after signing in, and the board sums it up and opens it', async () => {
    await renderApp({}, 'board');
    const summary = await screen.findByTestId('board-fleet');
    await waitFor(() => expect(screen.getByTestId('board-fleet-online').dataset.count).toBe('25'));
    expect(screen.getByTestId('board-fleet-offline').textContent).toBe('1 ✖ Offline');
    expect(screen.getByTestId('board-fleet-never_seen').dataset.count).toBe('2');
    expect(screen.getByTestId('board-fleet-unknown').dataset.count).toBe('1');
    fireEvent.click(summary);
    expect(screen.getByTestId('nav-fleet').getAttribute('aria-current')).toBe('page');
    expect(await screen.findByTestId('fleet-table')).toBeTruthy();
    expect(screen.getAllByRole('listitem')[0]!.textContent).toBe('Fleet');
  });
});
