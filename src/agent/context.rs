//! What a reconcile round works with: the executor its pods' steps go to, the settings, the
//! published state, the ConfigMaps and Secrets, the prober and the API server link.

use std::sync::Arc;

use super::api::ApiLink;
use super::config::ConfigState;
use super::executor::Executor;
use super::prober::Prober;
use super::settings::AgentConfig;
use super::shared::Shared;

pub struct Context {
    pub exec: Arc<Executor>,
    pub cfg: AgentConfig,
    pub shared: Arc<Shared>,
    pub config: Arc<ConfigState>,
    pub prober: Arc<Prober>,
    pub api: Option<ApiLink>,
}
