import { fireEvent, screen, waitFor, within } from '@testing-library/preact';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AlarmsView, sortAlarms } from './alarms';
import { demoData } from '../backend/demo-data';
import type { Alarm } from '../backend';
import { SOUND_KEY, disableSound } from '../components/sound';
import { ACCOUNT, callsOf, choose, renderApp, renderView, type } from '../test/render';

const rows = () => screen.getAllByTestId('alarm-row');
const rowOf = (id: number) => rows().find((r) => r.dataset.id === String(id))!;

describe('alarms', () => {
  it('lists active alarms high to low, with the priority as shape and word', async () => {
    renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    expect(rows().map((r) => r.dataset.priority)).toEqual(['high', 'medium', 'medium', 'medium', 'low']);
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
    expect(rows()).toHaveLength(4);
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

  it('shows where each alarm was paged, whether it was delivered, and when it escalated', async () => {
    renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    const high = screen.getByTestId('alarm-pages-41').textContent!;
    // Local time with the zone (the tests run in America/New_York).
    expect(high).toMatch(/^ward webhook ✓ \d\d:\d\d:\d\d E[SD]T/);
    expect(high).toMatch(/escalation to ward webhook ✓ \d\d:\d\d:\d\d E[SD]T/);
    expect(high).toMatch(/↑ escalated \d\d:\d\d:\d\d E[SD]T$/);
    expect(screen.getByTestId('alarm-pages-43').textContent).toContain('biomed webhook ✖ failed: HTTP 503');
    expect(screen.getByTestId('alarm-pages-44').textContent).toContain('biomed webhook … sending since');
    expect(screen.getByTestId('alarm-pages-42').textContent).toBe('no page on record');
  });

  it('says that this console is a secondary display, not the primary alarm system', async () => {
    renderView(<AlarmsView />);
    const note = screen.getByTestId('secondary-display-note').textContent!;
    expect(note).toContain('secondary display in a distributed alarm system (IEC 60601-1-8)');
    expect(note).toContain('not the primary alarm system');
  });

  it('acknowledges the selected infrastructure alarms with one reason; patient alarms stay one at a time', async () => {
    const { backend } = renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    // Only the two infrastructure alarms (no patient) can be selected; the others keep their own button.
    expect(screen.getAllByTestId(/^alarm-select-\d+$/).map((c) => c.dataset.testid)).toEqual(['alarm-select-44', 'alarm-select-43']);
    expect(within(rowOf(45)).getByTestId('alarm-ack')).toBeTruthy();
    const bulk = screen.getByTestId('alarm-bulk-ack') as HTMLButtonElement;
    expect(bulk.disabled).toBe(true);
    fireEvent.click(screen.getByTestId('alarm-select-all'));
    expect(bulk.textContent).toBe('Acknowledge selected (2)');
    fireEvent.click(bulk);
    expect((screen.getByTestId('bulk-ack-confirm') as HTMLButtonElement).disabled).toBe(true);
    type(screen.getByTestId('bulk-ack-reason'), 'Biomed webhook restored, monitors set up');
    fireEvent.click(screen.getByTestId('bulk-ack-confirm'));
    await waitFor(() => expect(rowOf(43).dataset.acked).toBe('true'));
    expect(rowOf(44).dataset.acked).toBe('true');
    expect(callsOf(backend, 'ackAlarms')).toEqual([[[44, 43], 'Biomed webhook restored, monitors set up']]);
    expect(screen.getByTestId('alarm-bulk-result').textContent).toBe('✓ 2 infrastructure alarms acknowledged.');
    expect(screen.queryAllByTestId(/^alarm-select-\d+$/)).toHaveLength(0);
    expect(rowOf(45).dataset.acked).toBe('false');
  });

  it('keeps the selection when the backend refuses a bulk acknowledgement, and says why', async () => {
    const { backend, errors } = renderView(<AlarmsView />);
    await screen.findAllByTestId('alarm-row');
    fireEvent.click(screen.getByTestId('alarm-select-43'));
    fireEvent.click(screen.getByTestId('alarm-bulk-ack'));
    type(screen.getByTestId('bulk-ack-reason'), 'Seen');
    backend.failNext('ackAlarms', 'refused', 'alarm 43 is about a patient: acknowledge it on its own');
    fireEvent.click(screen.getByTestId('bulk-ack-confirm'));
    await waitFor(() => expect(errors).toHaveLength(1));
    expect(errors[0]).toMatchObject({ code: 'refused' });
    expect(rowOf(43).dataset.acked).toBe('false');
    expect((screen.getByTestId('alarm-select-43') as HTMLInputElement).checked).toBe(true);
    expect(screen.getByTestId('bulk-ack-reason')).toBeTruthy();
  });
});

/** A stand-in for WebAudio: counts the tones started; its context starts as `state` and resumes if `resumes`. */
function fakeAudio(state: AudioContextState, resumes: boolean) {
  const played = { tones: 0 };
  class FakeAudioContext {
    state = state;
    currentTime = 0;
    destination = {};
    resume() { if (resumes) this.state = 'running'; return Promise.resolve(); }
    close() { return Promise.resolve(); }
    createGain() { return { gain: { setValueAtTime: () => undefined }, connect: () => undefined }; }
    createOscillator() {
      return { frequency: { value: 0 }, connect: () => undefined, start: () => { played.tones += 1; }, stop: () => undefined };
    }
  }
  vi.stubGlobal('AudioContext', FakeAudioContext);
  return played;
}

describe('alarm sound', () => {
  afterEach(() => {
    disableSound();
    vi.unstubAllGlobals();
    localStorage.clear();
  });

  it('is off by default, and says "sound unavailable" where the window has no WebAudio', async () => {
    renderView(<AlarmsView />);
    const toggle = screen.getByTestId('alarm-sound-toggle') as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    expect(screen.getByTestId('alarm-sound-status').textContent).toBe('off');
    expect(globalThis.AudioContext).toBeUndefined();
    fireEvent.click(toggle);
    await waitFor(() => expect(screen.getByTestId('alarm-sound-status').textContent).toContain('sound unavailable'));
    expect(toggle.checked).toBe(false);
    expect(localStorage.getItem(SOUND_KEY)).toBeNull();
  });

  it('says "sound unavailable" when the audio context stays suspended', async () => {
    const played = fakeAudio('suspended', false);
    renderView(<AlarmsView />);
    fireEvent.click(screen.getByTestId('alarm-sound-toggle'));
    await waitFor(() => expect(screen.getByTestId('alarm-sound-status').textContent).toContain('sound unavailable'));
    expect(played.tones).toBe(0);
  });

  it('plays a test tone when turned on, remembers it, and sounds when the unacknowledged high alarms rise', async () => {
    const played = fakeAudio('suspended', true);
    const { backend } = await renderApp({}, 'alarms');
    fireEvent.click(screen.getByTestId('alarm-sound-toggle'));
    await waitFor(() => expect(screen.getByTestId('alarm-sound-status').textContent).toContain('on:'));
    expect(played.tones).toBe(1);
    expect(localStorage.getItem(SOUND_KEY)).toBe('on');
    // Another high alarm, then fewer: only the rise sounds.
    backend.data.alarms.find((a) => a.id === 42)!.priority = 'high';
    backend.pushStatus();
    await waitFor(() => expect(played.tones).toBe(2));
    await backend.ackAlarm(41, 'Seen');
    backend.pushStatus();
    await waitFor(() => expect(screen.getByTestId('alarm-count-high').textContent).toBe('1'));
    expect(played.tones).toBe(2);
    fireEvent.click(screen.getByTestId('alarm-sound-toggle'));
    expect(screen.getByTestId('alarm-sound-status').textContent).toBe('off');
    expect(localStorage.getItem(SOUND_KEY)).toBeNull();
  });
});
