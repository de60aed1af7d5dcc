import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { DevicesView } from './devices';
import { MRN_SYSTEM, demoData } from '../backend/demo-data';
import { localToRfc3339 } from '../components/PairingForms';
import { callsOf, choose, renderView, type } from '../test/render';

const rowOf = (id: string) => screen.getAllByTestId('device-row').find((r) => r.dataset.device === id);

describe('devices and pairing', () => {
  it('lists devices with their pairing', async () => {
    renderView(<DevicesView />);
    await screen.findAllByTestId('device-row');
    expect(rowOf('MX-00A0')!.dataset.paired).toBe('true');
    expect(rowOf('MX-00A0')!.textContent).toContain('Demo Patient Alpha (MRN-100000)');
    expect(rowOf('MX-00A1')!.dataset.paired).toBe('false');
    expect(within(rowOf('MX-00A1')!).queryByTestId('device-unpair')).toBeNull();
  });

  it('offers "Confirm pairing" only after a successful lookup, and pairing updates the table', async () => {
    const { backend, errors } = renderView(<DevicesView />);
    await screen.findAllByTestId('device-row');
    // The unpaired device is preselected; the MRN system is the default.
    expect((screen.getByTestId('pair-device') as HTMLSelectElement).value).toBe('MX-00A1');
    expect((screen.getByTestId('pair-system') as HTMLInputElement).value).toBe(MRN_SYSTEM);
    expect(screen.queryByTestId('pair-confirm')).toBeNull();

    type(screen.getByTestId('pair-value'), 'MRN-999999');
    fireEvent.click(screen.getByTestId('pair-lookup'));
    await waitFor(() => expect(errors).toHaveLength(1));
    expect(screen.queryByTestId('pair-verified')).toBeNull();
    expect(screen.queryByTestId('pair-confirm')).toBeNull();

    type(screen.getByTestId('pair-value'), 'MRN-100002');
    fireEvent.click(screen.getByTestId('pair-lookup'));
    const card = await screen.findByTestId('pair-verified');
    expect(card.textContent).toContain('Demo Patient Charlie');
    expect(card.textContent).toContain('MRN-100002');
    expect(card.textContent).toContain('1990-01-15');
    expect(card.textContent).toContain('sandbox registry');

    // A start in the past asks for the reason, and confirming waits for it.
    expect(screen.queryByTestId('pair-reason')).toBeNull();
    type(screen.getByTestId('pair-from'), '2026-11-24T08:00');
    expect((screen.getByTestId('pair-confirm') as HTMLButtonElement).disabled).toBe(true);
    type(screen.getByTestId('pair-reason'), ' Spare monitor used overnight ');
    fireEvent.click(screen.getByTestId('pair-confirm'));
    await waitFor(() => expect(rowOf('MX-00A1')!.dataset.paired).toBe('true'));
    expect(rowOf('MX-00A1')!.textContent).toContain('Demo Patient Charlie (MRN-100002)');
    expect(callsOf(backend, 'pairDevice')).toEqual([[{
      device_id: 'MX-00A1', system: MRN_SYSTEM, value: 'MRN-100002', from: localToRfc3339('2026-11-24T08:00'), until: null,
      reason: 'Spare monitor used overnight', replacing: null,
    }]]);
    expect(screen.queryByTestId('pair-confirm')).toBeNull();
  });

  it('takes a device from another patient only once the operator confirms whom it replaces', async () => {
    const { backend, errors } = renderView(<DevicesView />);
    await screen.findAllByTestId('device-row');
    choose(screen.getByTestId('pair-device'), 'OX-1000');
    type(screen.getByTestId('pair-value'), 'MRN-100002');
    fireEvent.click(screen.getByTestId('pair-lookup'));
    await screen.findByTestId('pair-verified');
    const replace = screen.getByTestId('pair-replace');
    expect(replace.parentElement!.textContent).toContain('paired with Demo Patient Alpha (MRN-100000)');

    // Unconfirmed, the backend refuses and names the pairing in the way.
    fireEvent.click(screen.getByTestId('pair-confirm'));
    await waitFor(() => expect(errors).toHaveLength(1));
    expect(errors[0]).toMatchObject({ code: 'refused' });
    expect(rowOf('OX-1000')!.textContent).toContain('Demo Patient Alpha');

    fireEvent.click(replace);
    expect(screen.getByTestId('pair-confirm').textContent)
      .toBe('Confirm replacement: OX-1000 from Demo Patient Alpha (MRN-100000) to Demo Patient Charlie');
    fireEvent.click(screen.getByTestId('pair-confirm'));
    await waitFor(() => expect(rowOf('OX-1000')!.textContent).toContain('Demo Patient Charlie (MRN-100002)'));
    expect(callsOf(backend, 'pairDevice').at(-1)).toEqual([{
      device_id: 'OX-1000', system: MRN_SYSTEM, value: 'MRN-100002', from: null, until: null, reason: null, replacing: 1,
    }]);
    expect(screen.getByTestId('pair-result').textContent).toContain('replacing Demo Patient Alpha (MRN-100000)');
  });

  it('voids the verification when the identifier changes', async () => {
    renderView(<DevicesView />);
    await screen.findAllByTestId('device-row');
    type(screen.getByTestId('pair-value'), 'MRN-100002');
    fireEvent.click(screen.getByTestId('pair-lookup'));
    await screen.findByTestId('pair-verified');
    type(screen.getByTestId('pair-value'), 'MRN-100003');
    expect(screen.queryByTestId('pair-verified')).toBeNull();
    expect(screen.queryByTestId('pair-confirm')).toBeNull();
  });

  it('unpairs after an inline confirmation', async () => {
    const { backend } = renderView(<DevicesView />);
    await screen.findAllByTestId('device-row');
    fireEvent.click(within(rowOf('OX-1000')!).getByTestId('device-unpair'));
    expect(callsOf(backend, 'unpairDevice')).toHaveLength(0);
    fireEvent.click(screen.getByTestId('device-unpair-confirm'));
    await waitFor(() => expect(rowOf('OX-1000')!.dataset.paired).toBe('false'));
    expect(callsOf(backend, 'unpairDevice')).toEqual([['OX-1000']]);
  });

  it('shows when a pairing made for a period ends, and offers no unpair (Rust only closes open pairings)', async () => {
    const devices = demoData(new Date()).devices.map((d) =>
      (d.device_id === 'OX-1000' ? { ...d, paired_until: '2099-06-15T12:00:00Z' } : d));
    renderView(<DevicesView />, { devices });
    await screen.findAllByTestId('device-row');
    expect(rowOf('OX-1000')!.dataset.paired).toBe('true');
    expect(rowOf('OX-1000')!.textContent).toContain('until 2099-06-1');
    expect(within(rowOf('OX-1000')!).queryByTestId('device-unpair')).toBeNull();
    expect(within(rowOf('MX-00A0')!).queryByTestId('device-unpair')).toBeTruthy();
  });

  it('registers a device with a profile from the pipeline', async () => {
    const { backend } = renderView(<DevicesView />);
    await screen.findAllByTestId('device-row');
    await waitFor(() => expect(screen.getByTestId('register-profile').querySelectorAll('option')).toHaveLength(3));
    type(screen.getByTestId('register-id'), 'OX-2000');
    choose(screen.getByTestId('register-profile'), 'acme-ox100');
    type(screen.getByTestId('register-label'), 'Bed 5 oximeter');
    fireEvent.click(screen.getByTestId('register-submit'));
    await waitFor(() => expect(rowOf('OX-2000')).toBeTruthy());
    expect(rowOf('OX-2000')!.dataset.paired).toBe('false');
    expect(callsOf(backend, 'registerDevice')).toEqual([['OX-2000', 'acme-ox100', 'Bed 5 oximeter']]);
  });

  it('grants and withdraws consent per flow', async () => {
    const { backend } = renderView(<DevicesView />);
    type(screen.getByTestId('consent-value'), 'MRN-100002');
    choose(screen.getByTestId('consent-flow'), 'ehr-write');
    fireEvent.click(screen.getByTestId('consent-grant'));
    await waitFor(() => expect(backend.consent.get(`${MRN_SYSTEM}|MRN-100002|ehr-write`)).toBe(true));
    fireEvent.click(screen.getByTestId('consent-withdraw'));
    await waitFor(() => expect(backend.consent.get(`${MRN_SYSTEM}|MRN-100002|ehr-write`)).toBe(false));
    expect(callsOf(backend, 'setConsent').at(-1)).toEqual([MRN_SYSTEM, 'MRN-100002', 'ehr-write', false]);
    expect(screen.getByTestId('consent-result').textContent).toContain('withdrawn');
  });

  it('stores held readings only once store consent is recorded', async () => {
    const { backend, errors } = renderView(<DevicesView />);
    type(screen.getByTestId('consent-value'), 'MRN-100002');
    type(screen.getByTestId('held-reason'), 'consent form signed');
    fireEvent.click(screen.getByTestId('held-release'));
    await waitFor(() => expect(errors).toHaveLength(1));
    expect(String((errors[0] as Error).message)).toContain('no recorded consent for store');
    expect(backend.data.held.filter((h) => h.patient_id === 4)).toHaveLength(9);
    choose(screen.getByTestId('consent-flow'), 'store');
    fireEvent.click(screen.getByTestId('consent-grant'));
    await waitFor(() => expect(backend.consent.get(`${MRN_SYSTEM}|MRN-100002|store`)).toBe(true));
    fireEvent.click(screen.getByTestId('held-release'));
    await waitFor(() => expect(screen.getByTestId('consent-result').textContent).toContain('9 held readings of MRN-100002 stored'));
    expect(callsOf(backend, 'releaseHeld').at(-1)).toEqual([MRN_SYSTEM, 'MRN-100002', 'consent form signed']);
  });
});
