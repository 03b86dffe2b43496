//! What the pipeline builds from the config, held as one snapshot
//! ([`LiveConfig`]) that a reload swaps whole (`steward reload`, SIGHUP).
//!
//! Every call loads the snapshot once, when it is described (`describe`),
//! and carries it in its `CallRecord` to the end: a call that started before
//! a reload finishes under the config it started with (its tool, limit,
//! upstream client, price and spend cap), and no call ever sees half of one
//! config and half of another. The credential values and the redactor have
//! their own swaps (see `daemon`), because the audit log, the store, the
//! supervisor and monitoring share them; a reload swaps them before this
//! snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::forward::Forwarder;
use super::{Door, PipelineError, llm_upstream, plan};
use crate::config::{Config, LlmProviderConfig, LoopBreakerConfig, SpendConfig, SupervisedConfig};
use crate::llm::PriceTable;
use crate::policy::ToolMatcher;
use crate::secrets::{ScopeWatch, Secrets};

/// The parts of the pipeline built from one config.
pub struct LiveConfig {
    /// `agent.name`, written into every audit line.
    pub(super) agent: String,
    /// `[[tools]]` and `unmatched`: which tool a call is, and its limit.
    pub(super) matcher: ToolMatcher,
    /// `[loop_breaker]`, applied at admission.
    pub(super) loop_breaker: LoopBreakerConfig,
    /// `[llm.*]` providers by name.
    pub(super) llm: BTreeMap<String, LlmProviderConfig>,
    /// Built-in prices merged with `[prices.*]`.
    pub(super) prices: PriceTable,
    /// `[spend]`: the daily cap, its day, the default output bound.
    pub(super) spend: SpendConfig,
    /// One HTTP client per `[upstreams.*]` and `[llm.*]`.
    pub(super) forwarder: Forwarder,
    /// Upstreams that report their token's scopes.
    pub(super) scope_watch: ScopeWatch,
    /// `[supervised]`: whether side-effect calls wait for a human, how long.
    pub(super) supervised: SupervisedConfig,
    /// What an approval is bound to besides the call (see `approval::policy_version`).
    pub(super) policy_version: String,
    /// `[[tools]]` name → upstream: where the operator's undo of a tool goes.
    pub(super) tool_upstreams: BTreeMap<String, String>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig").field("agent", &self.agent).finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// Builds every part from `config`; the forwarder reads credential
    /// values from `secrets` per attempt. Fails (and nothing is swapped)
    /// when an upstream client or the price table cannot be built.
    pub fn build(config: &Config, secrets: &Arc<ArcSwap<Secrets>>) -> Result<Self, PipelineError> {
        let api =
            config.upstreams.iter().map(|(name, upstream)| (plan::forward_key(Door::Api, name), upstream.clone()));
        let llm =
            config.llm.iter().map(|(name, provider)| (plan::forward_key(Door::Llm, name), llm_upstream(provider)));
        Ok(Self {
            agent: config.agent.name.clone(),
            matcher: ToolMatcher::new(&config.tools, config.unmatched),
            loop_breaker: config.loop_breaker,
            llm: config.llm.clone(),
            prices: PriceTable::with_builtin(&config.prices)?,
            spend: config.spend.clone(),
            forwarder: Forwarder::new(api.chain(llm), Arc::clone(secrets))?,
            scope_watch: ScopeWatch::new(config),
            supervised: config.supervised,
            policy_version: super::approval::policy_version(config),
            tool_upstreams: config.tools.iter().map(|t| (t.name.clone(), t.upstream.clone())).collect(),
        })
    }
}
