// A settings page whose API is not released yet: it shows what it will do and no data; the shell still
// shows who is signed in, so moving through the navigation keeps the session.
import { startSettingsPage } from './shell.js';

startSettingsPage({ signInRequired: false });
