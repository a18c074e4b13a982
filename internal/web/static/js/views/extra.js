// Views that appear only when the server's API has their routes (feature
// detection in main.js, from the server's OpenAPI document): inference
// services (/v1/services) and, once the accounting work adds /v1/usage,
// usage, cost and credits (no view for them yet; their navigation link
// stays hidden). A view added here is keyed by its route name, as in
// main.js.
import services from './services.js';

export const extraViews = { services };
