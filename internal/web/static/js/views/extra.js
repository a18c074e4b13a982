// Views that appear only when the server's API has their routes (feature
// detection in main.js, from the server's OpenAPI document): usage, cost
// and credits (/v1/usage, from the accounting work) and inference
// services (/v1/services). No server of this version has those routes,
// so no view is registered for them yet; the navigation links stay hidden.
// A view added here is keyed by its route name, as in main.js.
export const extraViews = {};
