import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { AlarmsView, sortAlarms } from './alarms';
import { demoData } from '../backend/demo-data';
import type { Alarm } from '../backend';
import { ACCOUNT, callsOf, choose, renderView, type } from '../test/render';

const rows = () => screen.getAllByTestId('alarm-row');
const rowOf = (id: number) => rows().find((r) => r.dataset.id === String(id))!;

describe('alarms', () => {
  it('lists active alarms high to low, with the priority as shape and word', async () => {
    renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    expect(rows().map((r) => r.dataset.priority)).toEqual(['high', 'medium', 'low']);
    expect(rowOf(41).textContent).toContain('▲▲▲ HIGH');
    expect(rowOf(43).textContent).toContain('▲▲ MEDIUM');
    expect(rowOf(42).textContent).toContain('▲ LOW');
    expect(rowOf(41).dataset.kind).toBe('physiological');
    expect(rowOf(41).textContent).toContain('87 %');
    // The cleared alarm 37 is history, not active.
    expect(rows().some((r) => r.dataset.id === '37')).toBe(false);
  });

  it('sorts newest first within a priority', () => {
    const base = demoData(new Date()).alarms[0]!;
    const a = (id: number, priority: Alarm['priority'], raised_at: string): Alarm => ({ ...base, id, priority, raised_at });
    const sorted = sortAlarms([a(1, 'low', '2026-01-01T10:00:00Z'), a(2, 'high', '2026-01-01T09:00:00Z'),
      a(3, 'high', '2026-01-01T09:30:00Z')], 'active');
    expect(sorted.map((x) => x.id)).toEqual([3, 2, 1]);
  });

  it('filters by kind', async () => {
    renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    choose(screen.getByTestId('alarms-kind'), 'technical');
    await waitFor(() => expect(rows().every((r) => r.dataset.kind === 'technical')).toBe(true));
    expect(rows()).toHaveLength(2);
  });

  it('acknowledges only with a reason, then shows who acknowledged', async () => {
    const { backend } = renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    expect(rowOf(41).dataset.acked).toBe('false');
    fireEvent.click(within(rowOf(41)).getByTestId('alarm-ack'));
    const confirm = screen.getByTestId('ack-confirm') as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    type(screen.getByTestId('ack-reason'), '   ');
    expect(confirm.disabled).toBe(true);
    type(screen.getByTestId('ack-reason'), 'Probe re-seated, SpO2 recovering');
    expect(confirm.disabled).toBe(false);
    fireEvent.click(confirm);
    await waitFor(() => expect(rowOf(41).dataset.acked).toBe('true'));
    expect(callsOf(backend, 'ackAlarm')).toEqual([[41, 'Probe re-seated, SpO2 recovering']]);
    expect(rowOf(41).textContent).toContain(`Acked by ${ACCOUNT}`);
    expect(within(rowOf(41)).queryByTestId('alarm-ack')).toBeNull();
    expect(screen.queryByTestId('ack-reason')).toBeNull();
  });

  it('silences for the chosen minutes with a reason', async () => {
    const { backend } = renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    fireEvent.click(within(rowOf(41)).getByTestId('alarm-silence'));
    type(screen.getByTestId('silence-reason'), 'Patient being repositioned');
    choose(screen.getByTestId('silence-minutes'), '5');
    fireEvent.click(screen.getByTestId('silence-confirm'));
    await waitFor(() => expect(within(rowOf(41)).queryByTestId('alarm-silenced')).toBeTruthy());
    expect(callsOf(backend, 'silenceAlarm')).toEqual([[41, 'Patient being repositioned', 5]]);
    expect(rowOf(41).textContent).toContain(`by ${ACCOUNT}`);
    // Silenced is not acknowledged: the alarm still needs someone to own it.
    expect(rowOf(41).dataset.acked).toBe('false');
  });

  it('offers Silence only where it changes something: not once acknowledged, not past the limits', async () => {
    const { backend } = renderView(<AlarmsView />);
    const spent = backend.data.alarms.find((a) => a.id === 42)!;
    Object.assign(spent, { silence_count: 4, silenced_minutes: 20 });
    await screen.findAllByTestId('alarm-row');
    expect(within(rowOf(42)).queryByTestId('alarm-silence')).toBeNull();
    expect(within(rowOf(42)).getByTestId('alarm-silences-spent').textContent).toContain('escalates until acknowledged');
    fireEvent.click(within(rowOf(41)).getByTestId('alarm-ack'));
    type(screen.getByTestId('ack-reason'), 'At the bedside');
    fireEvent.click(screen.getByTestId('ack-confirm'));
    await waitFor(() => expect(rowOf(41).dataset.acked).toBe('true'));
    expect(within(rowOf(41)).queryByTestId('alarm-silence')).toBeNull();
  });

  it('shows cleared and acknowledged alarms in the history tab, without actions', async () => {
    const { backend } = renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    fireEvent.click(screen.getByTestId('alarms-history'));
    await waitFor(() => expect(rows().some((r) => r.dataset.id === '37')).toBe(true));
    expect(callsOf(backend, 'alarms').at(-1)).toEqual([false]);
    expect(rowOf(37).textContent).toContain('Cleared');
    expect(rowOf(37).textContent).toContain('Acked by R. Lindqvist');
    expect(screen.queryAllByTestId('alarm-ack')).toHaveLength(0);
  });
});
