//! Role aliases.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::CreateRoleAlias(i) => encode(engine.create_role_alias(scope, i).await),
        Request::DescribeRoleAlias(i) => encode(engine.describe_role_alias(scope, i).await),
        Request::UpdateRoleAlias(i) => encode(engine.update_role_alias(scope, i).await),
        Request::DeleteRoleAlias(i) => encode(engine.delete_role_alias(scope, i).await),
        Request::ListRoleAliases(i) => encode(engine.list_role_aliases(scope, i).await),
        other => return Err(other),
    })
}
