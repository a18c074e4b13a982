// Views that appear only when the server's API has their routes (feature
// detection in main.js, from the server's OpenAPI document): inference
// services (/v1/services) and usage, cost, credits, energy and carbon
// (/v1/usage), and the sites' power caps and carbon intensity (/v1/sites).
// A view added here is keyed by its route name, as in
// main.js.
import services from './services.js';
import usage from './usage.js';
import sites from './sites.js';

export const extraViews = { services, usage, sites };
