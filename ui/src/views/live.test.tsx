import { fireEvent, screen, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { LiveView } from './live';
import { MDC } from '../backend/demo-data';
import type { LiveValue } from '../backend';
import { callsOf, renderView } from '../test/render';

const row = (device: string, mdc: number) =>
  screen.getAllByTestId('live-row').find((r) => r.dataset.device === device && r.dataset.mdc === String(mdc))!;

describe('live streams', () => {
  it('groups by patient and device and marks stale rows', async () => {
    renderView(<LiveView />);
    await screen.findAllByTestId('live-row');
    expect(screen.getByText('Demo Patient Alpha (MRN-100000)')).toBeTruthy();
    const temp = row('00-1B-C5-0C-00-00-00-00', MDC.temp);
    expect(temp.dataset.stale).toBe('true');
    expect(temp.textContent).toContain('STALE');
    expect(temp.className).toContain('stale');
    const spo2 = row('OX-1000', MDC.spo2);
    expect(spo2.dataset.stale).toBe('false');
    expect(spo2.querySelector('[data-testid="live-value"]')!.textContent).toBe('87');
    expect(spo2.querySelector('[data-testid="live-age"]')!.textContent).toMatch(/^\d+ s ago$/);
    expect(spo2.textContent).toContain('%');
    // UCUM codes are shown as clinicians write them.
    expect(row('MX-00A0', MDC.nibpSys).textContent).toContain('mmHg');
  });

  it('keeps a device\'s values in clinical order, each at its metric\'s precision', async () => {
    renderView(<LiveView />);
    await screen.findAllByTestId('live-row');
    const monitor = screen.getAllByTestId('live-row').filter((r) => r.dataset.device === 'MX-00A0').map((r) => Number(r.dataset.mdc));
    expect(monitor).toEqual([MDC.heartRate, MDC.respRate, MDC.nibpSys, MDC.nibpDia]);
    expect(row('00-1B-C5-0C-00-00-00-00', MDC.temp).querySelector('[data-testid="live-value"]')!.textContent).toBe('36.8');
  });

  it('says in words what the device said of a value: demo data, and no number for an invalid one', async () => {
    renderView(<LiveView />);
    await screen.findAllByTestId('live-row');
    const demo = row('OX-1000', MDC.spo2);
    expect(demo.querySelector('[data-testid="validity-badge"]')!.textContent).toBe('DEMO');
    const offWrist = row('00-1B-C5-0C-00-00-00-01', MDC.spo2);
    expect(offWrist.querySelector('[data-testid="live-value"]')!.textContent).toBe('—');
    expect(offWrist.querySelector('[data-testid="validity-badge"]')!.textContent).toBe('INVALID (probe off?)');
  });

  it('updates a value when the backend pushes one, and puts unpaired devices in their own group', async () => {
    const { backend } = renderView(<LiveView />);
    await screen.findAllByTestId('live-row');
    await waitFor(() => expect(backend.liveSubscribers).toBe(1));
    const old = backend.data.live.find((v) => v.device_id === 'OX-1000' && v.mdc_code === MDC.spo2)!;
    const fresh: LiveValue = { ...old, value: 93, observed_at: new Date().toISOString(), age_secs: 0 };
    const unpaired: LiveValue = { ...old, device_id: 'MX-00A1', device_label: 'Spare monitor', patient_id: null,
      patient_label: null, observed_at: new Date().toISOString() };
    backend.pushLive([fresh, unpaired]);
    await waitFor(() => expect(row('OX-1000', MDC.spo2).querySelector('[data-testid="live-value"]')!.textContent).toBe('93'));
    expect(row('OX-1000', MDC.spo2).querySelector('[data-testid="live-age"]')!.textContent).toBe('0 s ago');
    expect(screen.getByText('Unpaired')).toBeTruthy();
    expect(row('MX-00A1', MDC.spo2)).toBeTruthy();
  });

  it('shows the trend chart of the selected row, by click or Enter, for the chosen window', async () => {
    const { backend } = renderView(<LiveView />);
    await screen.findAllByTestId('live-row');
    expect(screen.queryByTestId('chart')).toBeNull();
    fireEvent.click(row('OX-1000', MDC.spo2));
    await waitFor(() => expect(screen.getByTestId('chart').querySelector('svg')).toBeTruthy());
    expect(callsOf(backend, 'chart').at(-1)).toEqual(['OX-1000', MDC.spo2, 15]);
    fireEvent.click(screen.getByTestId('chart-window-60'));
    await waitFor(() => expect(callsOf(backend, 'chart').at(-1)).toEqual(['OX-1000', MDC.spo2, 60]));
    fireEvent.keyDown(row('MX-00A0', MDC.heartRate), { key: 'Enter' });
    await waitFor(() => expect(callsOf(backend, 'chart').at(-1)).toEqual(['MX-00A0', MDC.heartRate, 15]));
    expect(row('MX-00A0', MDC.heartRate).getAttribute('aria-selected')).toBe('true');
  });

  it('shows a patient\'s bed view: every parameter on one time axis, for the chosen window', async () => {
    const { backend } = renderView(<LiveView />);
    await screen.findAllByTestId('live-row');
    // Only patients have a bed view; unpaired devices do not.
    expect(screen.getAllByTestId(/^bed-view-/).map((b) => b.dataset.testid)).toEqual(['bed-view-1', 'bed-view-2', 'bed-view-3']);
    fireEvent.click(screen.getByTestId('bed-view-1'));
    await waitFor(() => expect(screen.getByTestId('bed-chart').querySelector('svg')).toBeTruthy());
    expect(screen.getByTestId('bed-chart').innerHTML).toContain('Heart rate');
    expect(screen.getByTestId('bed-chart').innerHTML).toContain('SpO2');
    expect(callsOf(backend, 'bedChart').at(-1)).toEqual([1, 15]);
    expect(screen.getByTestId('bed-view-1').getAttribute('aria-pressed')).toBe('true');
    fireEvent.click(screen.getByTestId('chart-window-240'));
    await waitFor(() => expect(callsOf(backend, 'bedChart').at(-1)).toEqual([1, 240]));
    // A row's own trend replaces the bed view.
    fireEvent.click(row('OX-1000', MDC.spo2));
    await waitFor(() => expect(screen.getByTestId('chart').querySelector('svg')).toBeTruthy());
    expect(screen.queryByTestId('bed-chart')).toBeNull();
  });

  it('unsubscribes when the view closes', async () => {
    const { backend, unmount } = renderView(<LiveView />);
    await waitFor(() => expect(backend.liveSubscribers).toBe(1));
    unmount();
    // Also covers a subscription that resolves after the view closed: it is dropped at once.
    await waitFor(() => expect(backend.liveSubscribers).toBe(0));
  });
});
