import { render } from 'preact';
import { App } from './app';
import { getBackend } from './backend';
import './styles.css';

render(<App backend={getBackend()} />, document.getElementById('app')!);
