//! Things, static thing groups and group membership.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::CreateThing(i) => encode(engine.create_thing(scope, i).await),
        Request::DescribeThing(i) => encode(engine.describe_thing(scope, i).await),
        Request::UpdateThing(i) => encode(engine.update_thing(scope, i).await),
        Request::DeleteThing(i) => encode(engine.delete_thing(scope, i).await),
        Request::ListThings(i) => encode(engine.list_things(scope, i).await),
        Request::CreateThingGroup(i) => encode(engine.create_thing_group(scope, i).await),
        Request::DescribeThingGroup(i) => encode(engine.describe_thing_group(scope, i).await),
        Request::UpdateThingGroup(i) => encode(engine.update_thing_group(scope, i).await),
        Request::DeleteThingGroup(i) => encode(engine.delete_thing_group(scope, i).await),
        Request::ListThingGroups(i) => encode(engine.list_thing_groups(scope, i).await),
        Request::AddThingToThingGroup(i) => encode(engine.add_thing_to_thing_group(scope, i).await),
        Request::RemoveThingFromThingGroup(i) => {
            encode(engine.remove_thing_from_thing_group(scope, i).await)
        }
        Request::ListThingsInThingGroup(i) => {
            encode(engine.list_things_in_thing_group(scope, i).await)
        }
        Request::ListThingGroupsForThing(i) => {
            encode(engine.list_thing_groups_for_thing(scope, i).await)
        }
        Request::UpdateThingGroupsForThing(i) => {
            encode(engine.update_thing_groups_for_thing(scope, i).await)
        }
        other => return Err(other),
    })
}
