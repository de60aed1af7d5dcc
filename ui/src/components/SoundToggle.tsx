// The switch for the optional high-priority tone, with what it is doing in words.
import { disableSound, enableSound, useSoundStatus, type SoundStatus } from './sound';

const STATUS_TEXT: Record<SoundStatus, string> = {
  off: 'off',
  testing: 'playing a test tone…',
  on: 'on: a tone sounds when a high-priority alarm is raised',
  unavailable: 'sound unavailable: this workstation could not play the test tone',
};

export function SoundToggle() {
  const status = useSoundStatus();
  return (
    <label class={`check sound-toggle sound-${status}`}>
      <input type="checkbox" data-testid="alarm-sound-toggle" checked={status === 'on' || status === 'testing'}
        disabled={status === 'testing'}
        // The tone must start inside this handler: it is the user gesture that lets the window make sound.
        onChange={(e) => (e.currentTarget.checked ? enableSound() : disableSound())} />
      {' '}Sound for high-priority alarms:{' '}
      <span data-testid="alarm-sound-status" role="status">{STATUS_TEXT[status]}</span>
    </label>
  );
}
