import { fireEvent, screen, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { SettingsView } from './settings';
import { callsOf, choose, renderView, type } from '../test/render';

describe('settings', () => {
  it('tests a connection and shows the result with a mark', async () => {
    renderView(<SettingsView />);
    fireEvent.click(await screen.findByTestId('settings-test-ehr'));
    const result = await screen.findByTestId('settings-test-result');
    expect(result.textContent).toContain('✗ EHR: No answer from https://ehr.example.org/fhir');
    expect(result.dataset.ok).toBe('false');
    fireEvent.click(screen.getByTestId('settings-test-broker'));
    await waitFor(() => expect(screen.getByTestId('settings-test-result').textContent).toContain('✓ Broker: Embedded ingest endpoint'));
  });

  it('shows the fields of the chosen EHR kind and the read-only values', async () => {
    renderView(<SettingsView />);
    expect(((await screen.findByTestId('settings-ehr-url')) as HTMLInputElement).value).toBe('https://ehr.example.org/fhir');
    expect(screen.getByTestId('settings-store-url').textContent).toBe('sqlite:///var/lib/vigil/vigil.db');
    expect(screen.getByTestId('settings-rules-version').textContent).toBe('adult-vitals-2026.11-1');
    choose(screen.getByTestId('settings-ehr-kind'), 'hl7v2');
    expect(screen.queryByTestId('settings-ehr-url')).toBeNull();
    expect(screen.getByTestId('settings-mllp-addr')).toBeTruthy();
    choose(screen.getByTestId('settings-broker-mode'), 'external');
    expect(screen.getByTestId('settings-broker-url')).toBeTruthy();
    // Missing addresses block saving and say what is missing.
    expect((screen.getByTestId('settings-save') as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByText(/needs its MLLP address/)).toBeTruthy();
  });

  it('saves only after confirming the restart with a reason', async () => {
    const { backend } = renderView(<SettingsView />);
    const save = (await screen.findByTestId('settings-save')) as HTMLButtonElement;
    expect(save.disabled).toBe(true);
    choose(screen.getByTestId('settings-ehr-kind'), 'hl7v2');
    type(screen.getByTestId('settings-mllp-addr'), 'ehr-gw.example.org:2575');
    choose(screen.getByTestId('settings-ehr-environment'), 'test');
    fireEvent.click(screen.getByTestId('settings-save'));
    expect(screen.getByText(/restarts the pipeline/)).toBeTruthy();
    const confirm = screen.getByTestId('settings-save-confirm') as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    type(screen.getByTestId('settings-reason'), '   ');
    expect(confirm.disabled).toBe(true);
    type(screen.getByTestId('settings-reason'), ' EHR moved to the HL7 gateway ');
    expect(callsOf(backend, 'saveSettings')).toHaveLength(0);
    fireEvent.click(confirm);
    await screen.findByTestId('settings-save-result');
    const [[saved, reason]] = callsOf(backend, 'saveSettings') as [[typeof backend.data.settings, string]];
    expect(reason).toBe('EHR moved to the HL7 gateway');
    expect(saved.ehr).toEqual({
      kind: 'hl7v2', environment: 'test', base_url: 'https://ehr.example.org/fhir', auth: 'smart', mllp_addr: 'ehr-gw.example.org:2575',
    });
    expect(backend.data.settings.ehr.kind).toBe('hl7v2');
    await waitFor(() => expect((screen.getByTestId('settings-save') as HTMLButtonElement).disabled).toBe(true));
  });
});
