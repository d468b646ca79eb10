//! The bindings of wit/pow.wit's `handler` world, generated for every plugin here: the host's
//! imports (`compute`, `session`, `log`), the shared types, and the `Guest` trait the kit
//! implements for every [`Handler`](crate::Handler). A plugin exports with
//! [`export_handler!`](crate::export_handler).

wit_bindgen::generate!({
    world: "handler",
    path: "../../wit",
    pub_export_macro: true,
    default_bindings_module: "powhost_plugin_kit::bindings",
});
