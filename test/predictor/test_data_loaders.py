from pathlib import Path

import numpy as np
import pytest

from rap_planner.data.highd import load_highd
from rap_planner.data.ngsim import FEET_TO_M, load_ngsim

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_ngsim_units_frame_and_front_to_centre():
    table = load_ngsim(FIXTURES / "ngsim" / "trajectories-sample.csv", scene=3)
    assert np.isclose(table.dt_s, 0.1) and set(table.scenes) == {3}
    assert len(table) == 10  # the duplicated row is dropped
    v7 = table["agent_id"] == 7
    assert list(table["frame"][v7]) == list(range(1000, 1006))
    # front at Local_Y = 100 + 5k ft; centre half a 15 ft length behind, along +x (direction of travel)
    np.testing.assert_allclose(table["x_m"][v7], (100.0 + 5.0 * np.arange(6) - 7.5) * FEET_TO_M)
    np.testing.assert_allclose(table["y_m"][v7], -18.0 * FEET_TO_M)  # Local_X grows to the right
    np.testing.assert_allclose(table["v_mps"][v7], 50.0 * FEET_TO_M)
    np.testing.assert_allclose(table["yaw_rad"][v7], 0.0, atol=1e-12)
    np.testing.assert_allclose(table["length_m"][v7], 15.0 * FEET_TO_M)
    np.testing.assert_allclose(table["width_m"][table["agent_id"] == 9], 8.0 * FEET_TO_M)


def test_ngsim_headerless_whitespace_file_and_segments(tmp_path):
    lines = (FIXTURES / "ngsim" / "trajectories-sample.csv").read_text().splitlines()[1:]
    path = tmp_path / "trajectories-0400-0415.txt"
    path.write_text("\n".join("   ".join(line.split(",")) for line in lines) + "\n")
    table = load_ngsim(path, segment_s=0.3)
    assert len(table) == 10
    assert set(table.scenes) == {0, 1}  # frames 1000-1002 and 1003-1005


def test_ngsim_missing_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Vehicle_ID,Frame_ID,Local_X\n1,2,3\n")
    with pytest.raises(ValueError, match="lacks columns"):
        load_ngsim(path)


def test_highd_corner_to_centre_axes_and_frame_rate():
    table = load_highd(FIXTURES / "highd" / "01_tracks.csv")
    assert np.isclose(table.dt_s, 1 / 25) and set(table.scenes) == {1}
    car = table["agent_id"] == 1
    np.testing.assert_allclose(table["x_m"][car], 100.0 + np.arange(8) + 2.25, atol=1e-9)
    np.testing.assert_allclose(table["y_m"][car], -(22.0 + 0.02 * np.arange(8) + 0.95), atol=1e-9)
    np.testing.assert_allclose(table["length_m"][car], 4.5)
    np.testing.assert_allclose(table["width_m"][car], 1.9)
    np.testing.assert_allclose(table["yaw_rad"][car], np.arctan2(-0.5, 25.0))  # drifting down in the image = right
    truck = table["agent_id"] == 2
    np.testing.assert_allclose(np.abs(table["yaw_rad"][truck]), np.pi)
    np.testing.assert_allclose(table["v_mps"][truck], 30.0)
    np.testing.assert_allclose(table["x_m"][truck][0], 300.0 + 8.0)


def test_ngsim_data_gov_export_with_extra_text_columns(tmp_path):
    path = tmp_path / "ngsim.csv"
    path.write_text("Vehicle_ID,Frame_ID,Total_Frames,Global_Time,Local_X,Local_Y,Global_X,Global_Y,v_length,v_Width,"
                    "v_Class,v_Vel,v_Acc,Lane_ID,O_Zone,D_Zone,Int_ID,Section_ID,Direction,Movement,Preceding,"
                    "Following,Space_Headway,Time_Headway,Location\n"
                    "515,2330,1123,1118848075000,30.0,188.0,6451203.7,1873252.5,13.5,6.5,2,40.0,0,2,,,,,,,0,0,0,0,"
                    "us-101\n")
    table = load_ngsim(path)
    np.testing.assert_allclose([table["x_m"][0], table["y_m"][0]], [(188.0 - 6.75) * FEET_TO_M, -30.0 * FEET_TO_M])
    np.testing.assert_allclose(table["length_m"], 13.5 * FEET_TO_M)
